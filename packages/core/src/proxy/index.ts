export * from "./proxier.js";
