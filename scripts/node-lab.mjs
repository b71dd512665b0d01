// The README's main job, after setup: start containerd (own root, CNI bridge networking) and a
// registry on 127.0.0.1:5000 holding the locally built images, then run `worknode node` on the
// embedded default (the static pods in examples/manifests/ and the Services in
// examples/services.yaml), and tear the lab down when the agent stops (Ctrl-C / SIGTERM).
import { spawn } from "node:child_process";
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
const lab = await startContainerdLab({
  containerd: { labDir: "/var/lib/worknode/node-lab" },
  log,
});
let status = 1;
try {
  if (stopping) throw new Error("interrupted during setup");
  const args = [
    path.join(root, "packages/worknode/dist/cli.js"),
    "node",
    "--pod-manifest-path",
    path.join(root, "examples/manifests"),
    "--services-file",
    path.join(root, "examples/services.yaml"),
    "--container-runtime-endpoint",
    lab.endpoint,
    ...process.argv.slice(2),
  ];
  log(`runtime ${lab.runtimeVersion.runtimeName} ${lab.runtimeVersion.runtimeVersion} at ${lab.endpoint}`);
  log(`worknode ${args.slice(1).join(" ")}`);
  child = spawn(process.execPath, args, { stdio: "inherit" });
  status = await new Promise((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 0 : 1))),
  );
} finally {
  log("stopping containerd and the registry");
  await lab.stop();
}
process.exit(status);
