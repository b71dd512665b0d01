// The README's main job, after setup: start containerd (own root, CNI bridge networking) and a
// registry on 127.0.0.1:5000 holding the locally built images, then run `worknode node` on the
// embedded default (the static pods in examples/manifests/ and the Services in
// examples/services.yaml, programmed with iptables on this host), and tear the lab down when the
// agent stops (Ctrl-C / SIGTERM). The agent itself leaves its proxy rules in place on exit, as
// kube-proxy does; this script tears the whole lab down, so it removes them with
// `worknode node --cleanup` before stopping containerd.
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startContainerdLab } from "@worknode/testing";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const log = (line) => process.stderr.write(`==> ${line}\n`);

let stopping = false;
let child;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    stopping = true;
    if (child) child.kill(sig);
  });
}

log("starting containerd + local registry (this builds the pause and busybox images the first time)");
const podSubnet = "10.88.0.0/16";
const lab = await startContainerdLab({
  containerd: { labDir: "/var/lib/worknode/node-lab", podSubnet },
  log,
});
const cli = path.join(root, "packages/worknode/dist/cli.js");
let status = 1;
try {
  if (stopping) throw new Error("interrupted during setup");
  const args = [
    cli,
    "node",
    "--pod-manifest-path",
    path.join(root, "examples/manifests"),
    "--services-file",
    path.join(root, "examples/services.yaml"),
    "--container-runtime-endpoint",
    lab.endpoint,
    "--cluster-cidr",
    podSubnet,
    ...process.argv.slice(2),
  ];
  log(`runtime ${lab.runtimeVersion.runtimeName} ${lab.runtimeVersion.runtimeVersion} at ${lab.endpoint}`);
  log(`worknode ${args.slice(1).join(" ")}`);
  child = spawn(process.execPath, args, { stdio: "inherit" });
  status = await new Promise((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 0 : 1))),
  );
} finally {
  log("removing the proxy rules (worknode node --cleanup)");
  const cleanup = spawnSync(process.execPath, [cli, "node", "--cleanup"], { stdio: "inherit" });
  if (cleanup.status !== 0) log(`worknode node --cleanup exited with ${cleanup.status}`);
  log("stopping containerd and the registry");
  await lab.stop();
}
process.exit(status);
