import { runCli } from "worknode";

// The CLI's dispatcher is a function: embed the same commands in your own agent or tests.
const status = await runCli(["node", "--help"], {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  signal: AbortSignal.timeout(60_000),
});
console.log(`exit status ${status}`);
