import { type ContainerdLab, criRunPodSandbox, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, expect, it } from "vitest";

let lab: ContainerdLab;
beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(l) });
}, 600_000);
afterAll(() => lab?.stop());

it("runs a pod", async () => {
  // lab.endpoint is "unix:///tmp/worknode-containerd-wnbr0/containerd.sock": point your CRI client at it
  const id = await criRunPodSandbox(lab.endpoint, { name: "web", uid: "web-1" });
  expect(id).toMatch(/^[0-9a-f]{64}$/);
  // lab.busyboxImage === "127.0.0.1:5000/busybox:1" can be pulled through CRI
});
