import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { ManifestDirSource } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { containerLogPathFromStatus, Kubelet, KubeletMetrics, KubeletServer } from "@worknode/kubelet";
import { startContainerdLab } from "@worknode/testing";

// A kubelet composed from its parts: a CRI client, a static-pod source, the Kubelet and its HTTP
// endpoints. The runtime is $WORKNODE_CRI_ENDPOINT when set, else a private containerd with CNI
// networking and a loopback registry holding busybox (as root, like every kubelet).
const lab = await startContainerdLab({
  containerd: {
    labDir: "/tmp/wn-example-lab",
    bridgeName: "wnex0",
    podSubnet: "10.95.0.0/16",
    streamPort: 10071,
  },
});
const dir = mkdtempSync(path.join(tmpdir(), "compose-kubelet-"));
const manifests = path.join(dir, "manifests"); // kubelet's --pod-manifest-path
const rootDir = path.join(dir, "root"); // --root-dir (default /var/lib/worknode/kubelet)
const podLogsDir = path.join(dir, "logs"); // default /var/log/pods
const nodeName = "example-node";
const client = new CriClient({ endpoint: lab.endpoint });
const source = new ManifestDirSource({ path: manifests, nodeName });
const metrics = new KubeletMetrics({ nodeName });
const kubelet = new Kubelet({
  client,
  nodeName,
  sources: [source],
  rootDir,
  podLogsDir,
  onPodStarted: metrics.observePodStart,
});
const server = new KubeletServer({
  nodeName,
  server: { host: "127.0.0.1", port: 0, certDir: path.join(rootDir, "pki") },
  provider: {
    pods: () => kubelet.pods(),
    containerLogPath: (namespace, name, container, previous) => {
      const pod = kubelet
        .pods()
        .find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
      return pod && containerLogPathFromStatus(pod, container, previous, podLogsDir);
    },
    healthy: () => kubelet.plegHealth().healthy,
    registries: [metrics.registry],
  },
});
// GET on the kubelet API (HTTPS with its self-signed certificate), as `kubectl logs` reaches it.
const kubeletApi = (urlPath: string) =>
  new Promise<string>((resolve, reject) => {
    const url = `https://127.0.0.1:${server.serverAddress?.port}${urlPath}`;
    get(url, { ca: server.certificate?.cert }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk)).on("end", () => resolve(body));
    }).on("error", reject);
  });
const until = async (what: string, done: () => boolean | Promise<boolean>) => {
  for (const deadline = Date.now() + 60_000; !(await done()); await new Promise((r) => setTimeout(r, 200)))
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
};

try {
  // A static pod, as kubelet's --pod-manifest-path reads it.
  mkdirSync(manifests);
  const container = {
    name: "hello",
    image: lab.busyboxImage,
    command: ["sh", "-c", "echo hello; sleep 3600"],
  };
  const spec = { terminationGracePeriodSeconds: 1, containers: [container] };
  const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "hello" }, spec };
  writeFileSync(path.join(manifests, "hello.json"), JSON.stringify(pod));
  await server.start();
  await source.start();
  await kubelet.start();

  const name = `hello-${nodeName}`;
  const hello = () => kubelet.pods().find((p) => p.metadata?.name === name);
  await until("the pod to run", () => Boolean(hello()?.status?.containerStatuses?.[0]?.state?.running));
  console.log(`pod ${name}: ${hello()?.status?.phase}, IP ${hello()?.status?.podIP}`);
  const logs = async () => kubeletApi(`/containerLogs/default/${name}/hello`);
  await until("its log", async () => (await logs()) !== "");
  console.log(`logs: ${(await logs()).trim()}`);
  const started = (await kubeletApi("/metrics"))
    .split("\n")
    .find((l) => l.startsWith("kubelet_pod_start_duration_seconds_count"));
  console.log(started);

  // Removing the manifest stops and removes the pod.
  rmSync(path.join(manifests, "hello.json"));
  await until("the pod to be removed", () => kubelet.pods().length === 0);
  await kubelet.waitForTerminations();
  console.log("pod removed");
} finally {
  await kubelet.stop();
  await source.stop();
  await server.stop();
  client.close();
  await lab.stop();
  rmSync(dir, { recursive: true, force: true });
}
