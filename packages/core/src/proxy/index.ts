export * from "./bounded-frequency-runner.js";
export * from "./change-set-merge.js";
export * from "./controller.js";
export * from "./health-server.js";
export * from "./metrics.js";
export * from "./proxier.js";
export * from "./proxier-health.js";
export * from "./service-health.js";
