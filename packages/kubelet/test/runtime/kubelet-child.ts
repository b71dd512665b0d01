// A kubelet in its own process, for the restart-safety system test (the test SIGKILLs it).
// Usage: node --conditions=@worknode/source --import tsx kubelet-child.ts '<json options>'
import { createLogger, ManifestDirSource } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { Kubelet, newCrashLoopBackoffWith } from "../../src/index.js";

interface ChildOptions {
  endpoint: string;
  manifestDir: string;
  nodeName: string;
  rootDir: string;
  podLogsDir: string;
}

const opts = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
const client = new CriClient({ endpoint: opts.endpoint });
const source = new ManifestDirSource({ path: opts.manifestDir, nodeName: opts.nodeName, debounceMs: 20 });
const kubelet = new Kubelet({
  client,
  nodeName: opts.nodeName,
  sources: [source],
  rootDir: opts.rootDir,
  podLogsDir: opts.podLogsDir,
  resolvConf: "",
  relistPeriodMs: 300,
  crashLoopBackoff: newCrashLoopBackoffWith(1000),
  // WORKNODE_LOG_LEVEL=debug shows what the child does (on the test's stderr).
  ...(process.env.WORKNODE_LOG_LEVEL ? { logger: createLogger() } : {}),
});
await source.start();
await kubelet.start();
process.stdout.write("started\n");
// The kubelet's timers do not hold the event loop open (realClock unrefs them): the process does.
const keepAlive = setInterval(() => {}, 1 << 30);
process.on("SIGTERM", () => {
  void kubelet.stop().then(() => {
    clearInterval(keepAlive);
    client.close();
    process.exit(0);
  });
});
