#!/usr/bin/env node
import { runCli } from "./main.js";

function main(): void {
  const controller = new AbortController();
  let signals = 0;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      signals++;
      if (signals > 1) process.exit(130);
      controller.abort(new Error(`received ${sig}`));
    });
  }
  void runCli(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    signal: controller.signal,
  }).then((status) => {
    process.exitCode = status;
  });
}

main();
