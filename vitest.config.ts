import { defineConfig } from "vitest/config";

// Two tiers: `unit` (no privileges, fast, anywhere) and `system` (root on Linux, real components).
// Workspace packages resolve to their TypeScript sources through the "@worknode/source" condition.
const conditions = ["@worknode/source", "import", "module", "node", "default"];
const resolve = { conditions };
const ssr = { resolve: { conditions, externalConditions: conditions } };

export default defineConfig({
  resolve,
  ssr,
  test: {
    projects: [
      {
        resolve,
        ssr,
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "examples/test/**/*.test.ts"],
          exclude: ["**/*.system.test.ts", "**/node_modules/**"],
          testTimeout: 20_000,
          benchmark: { include: ["packages/*/bench/**/*.bench.ts"] },
        },
      },
      {
        resolve,
        ssr,
        test: {
          name: "system",
          include: ["packages/*/test/**/*.system.test.ts"],
          exclude: ["**/node_modules/**"],
          testTimeout: 300_000,
          hookTimeout: 1_800_000,
          // Real components (containerd, kernel tables, a control plane) are shared machine state: one file at a time.
          fileParallelism: false,
          globalSetup: ["packages/testing/src/system-guard.ts"],
        },
      },
    ],
  },
});
