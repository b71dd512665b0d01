// Prints one closing line over vitest JSON reports: "tests: N passed, N failed, N skipped".
// Exits non-zero when a tier failed, ran no test, or skipped a test (a tier never skips silently).
import { readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of process.argv.slice(2)) {
  const r = JSON.parse(readFileSync(file, "utf8"));
  if (r.numTotalTests === 0) {
    console.error(`${file}: the tier ran no test`);
    failed++;
  }
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests ?? 0);
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || skipped > 0 ? 1 : 0);
