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
  // Library timers are unref'd (background loops never hold a process open): keep the CLI
  // alive until its command returns, even while it only waits on such a timer.
  const keepAlive = setInterval(() => {}, 1 << 30);
  void runCli(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    signal: controller.signal,
  })
    .then((status) => {
      process.exitCode = status;
    })
    .finally(() => clearInterval(keepAlive));
}

main();
