// Dead socket and runtime restart: a private containerd (own lab directory, bridge and subnet) is
// started, stopped and started again under one CriClient. This file always uses its own containerd,
// also when $WORKNODE_CRI_ENDPOINT names another runtime: it restarts the runtime it talks to.
import { existsSync } from "node:fs";
import {
  CONTAINERD_LAB_PACKAGES,
  type ContainerdInstance,
  type ContainerdOptions,
  ensureAptPackages,
  startContainerd,
} from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CriClient, type CriError, CriUnavailableError, GrpcStatus } from "../src/index.js";

const OPTIONS: ContainerdOptions = {
  labDir: "/tmp/wncri-rc",
  bridgeName: "wncri1",
  podSubnet: "10.78.0.0/16",
  streamPort: 10032,
};
const SOCKET = "/tmp/wncri-rc/containerd.sock";

let containerd: ContainerdInstance | undefined;
let client: CriClient;

beforeAll(async () => {
  await ensureAptPackages(CONTAINERD_LAB_PACKAGES);
  if (existsSync(SOCKET)) throw new Error(`${SOCKET} exists: a previous run left its containerd behind`);
  client = new CriClient({ endpoint: `unix://${SOCKET}`, timeoutMs: 60_000 });
});

afterAll(async () => {
  client?.close();
  await containerd?.stop();
});

/** Calls Version and returns the error it rejects with, and how long that took. */
async function failingVersion(): Promise<{ err: unknown; ms: number }> {
  const t0 = Date.now();
  const err = await client.runtime.version({}).then(
    () => new Error("Version unexpectedly succeeded"),
    (e: unknown) => e,
  );
  return { err, ms: Date.now() - t0 };
}

describe("CriClient connection handling against a real containerd", () => {
  it("fails fast with Unavailable, not at the 60 s deadline, when no runtime listens", async () => {
    const { err, ms } = await failingVersion();
    expect(err).toBeInstanceOf(CriUnavailableError);
    expect((err as CriError).grpcCode).toBe(GrpcStatus.UNAVAILABLE);
    expect((err as CriError).rpc).toBe("Version");
    expect((err as CriError).message).toContain(`unix://${SOCKET}`);
    expect((err as CriError).details).toContain("does not exist");
    expect(ms).toBeLessThan(15_000);
  });

  it("connects once the runtime is up, with the same client", async () => {
    containerd = await startContainerd(OPTIONS);
    const v = await client.connect();
    expect(v.runtimeName).toBe("containerd");
  });

  it("fails fast while the runtime is down, and recovers on the first call after it is back", async () => {
    await client.runtime.listContainers({});
    await containerd?.stop();
    containerd = undefined;

    const down = await failingVersion();
    expect(down.err).toBeInstanceOf(CriUnavailableError);
    expect(down.ms).toBeLessThan(15_000);

    containerd = await startContainerd(OPTIONS);
    // No retry loop: the client waits (bounded) for the channel to reconnect.
    const v = await client.runtime.version({});
    expect(v.runtimeApiVersion).toBe("v1");
    const { containers } = await client.runtime.listContainers({});
    expect(containers).toEqual([]);
  });
});
