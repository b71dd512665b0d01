// The generated RPC tables against the proto they were generated from, and the client's methods.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CriClient } from "../src/client.js";
import { Container, ContainerState, ListContainersRequest } from "../src/generated/api.js";
import { imageServiceRpcs, runtimeServiceRpcs } from "../src/generated/services.js";
import { encodeRequest } from "../src/transport.js";

const generated = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "generated");
const proto = readFileSync(path.join(generated, "api.proto"), "utf8");
const versionRecord = JSON.parse(readFileSync(path.join(generated, "VERSION.json"), "utf8")) as Record<
  string,
  unknown
>;

/** `rpc Name(Req) returns (stream? Res)` lines of one service block, read independently of the generator. */
function protoRpcs(service: string): Array<{ name: string; req: string; res: string; stream: boolean }> {
  const block = new RegExp(`service ${service} \\{([\\s\\S]*?)\\n\\}`).exec(proto)?.[1] ?? "";
  return [...block.matchAll(/rpc (\w+)\((\w+)\) returns \((stream )?(\w+)\)/g)].map((m) => ({
    name: m[1]!,
    req: m[2]!,
    stream: m[3] !== undefined,
    res: m[4]!,
  }));
}

describe("generated RPC tables", () => {
  it.each([
    ["RuntimeService", runtimeServiceRpcs],
    ["ImageService", imageServiceRpcs],
  ] as const)(
    "cover every RPC of %s with its lowerCamelCase name, path and streaming flag",
    (service, table) => {
      const rpcs = protoRpcs(service);
      expect(rpcs.length).toBeGreaterThan(5);
      const expected = rpcs.map((r) => [r.name.charAt(0).toLowerCase() + r.name.slice(1), r.name, r.stream]);
      const actual = Object.entries(table).map(([method, d]) => [method, d.name, d.serverStreaming]);
      expect(actual).toEqual(expected);
      for (const d of Object.values(table)) expect(d.path).toBe(`/runtime.v1.${service}/${d.name}`);
    },
  );

  it("includes the RPCs the kubelet uses", () => {
    for (const m of [
      "version",
      "runPodSandbox",
      "listContainers",
      "execSync",
      "getContainerEvents",
      "status",
    ]) {
      expect(runtimeServiceRpcs).toHaveProperty(m);
    }
    for (const m of ["listImages", "imageStatus", "pullImage", "removeImage", "imageFsInfo"]) {
      expect(imageServiceRpcs).toHaveProperty(m);
    }
  });

  it("records the cri-api version and the proto's sha256", async () => {
    const { createHash } = await import("node:crypto");
    expect(versionRecord.module).toBe("k8s.io/cri-api");
    expect(versionRecord.version).toBe("v0.36.3");
    expect(versionRecord.protoSha256).toBe(createHash("sha256").update(proto).digest("hex"));
  });
});

describe("CriClient surface", () => {
  it("has a function for every RPC on runtime and image, streaming ones returning async iterables", () => {
    const client = new CriClient({ endpoint: "unix:///nonexistent/worknode-cri-test.sock" });
    try {
      for (const m of Object.keys(runtimeServiceRpcs))
        expect(typeof Reflect.get(client.runtime, m)).toBe("function");
      for (const m of Object.keys(imageServiceRpcs))
        expect(typeof Reflect.get(client.image, m)).toBe("function");
      const events = client.runtime.getContainerEvents({});
      expect(typeof events[Symbol.asyncIterator]).toBe("function");
      expect(client.endpoint).toBe("unix:///nonexistent/worknode-cri-test.sock");
    } finally {
      client.close();
    }
  });
});

describe("encodeRequest", () => {
  it("encodes partial requests with proto defaults, round-tripping through the generated codec", () => {
    const bytes = encodeRequest(ListContainersRequest, {
      filter: {
        podSandboxId: "abc",
        state: { state: ContainerState.CONTAINER_RUNNING },
        labelSelector: { a: "b" },
      },
    });
    const back = ListContainersRequest.decode(bytes);
    expect(back.filter?.podSandboxId).toBe("abc");
    expect(back.filter?.state?.state).toBe(ContainerState.CONTAINER_RUNNING);
    expect(back.filter?.labelSelector).toEqual({ a: "b" });
    expect(back.filter?.id).toBe("");
    expect(encodeRequest(ListContainersRequest, undefined).length).toBe(0);
  });

  it("decodes int64 fields as bigint, beyond 2^53", () => {
    const createdAt = 1_795_554_862_138_123_456n;
    const c = Container.fromPartial({ id: "c1", createdAt, state: ContainerState.CONTAINER_EXITED });
    const back = Container.decode(Container.encode(c).finish());
    expect(back.createdAt).toBe(createdAt);
    expect(back.state).toBe(ContainerState.CONTAINER_EXITED);
  });
});
