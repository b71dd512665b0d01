import { describe, expect, it } from "vitest";
import { checkPinPath, renderBatch, UnsafePinPathError } from "../src/maps/batch.js";
import type { MapOp } from "../src/maps/state.js";

const DIR = "/sys/fs/bpf/worknode/maps-v1";
const z = (n: number) => new Array<string>(n).fill("00").join(" ");

describe("renderBatch", () => {
  it("one bpftool map line per operation, in order, keys and values as hex bytes", () => {
    const ops: MapOp[] = [
      { op: "putBackend", id: 1, slot: 0, backend: { ip: "10.180.0.1", port: 8080 } },
      {
        op: "putFrontend",
        frontend: { ip: "172.30.0.41", port: 80, protocol: "TCP" },
        value: { id: 1, count: 1, affinityTimeout: 10800 },
      },
      { op: "deleteFrontend", frontend: { ip: "fd00::1", port: 53, protocol: "UDP" } },
      { op: "deleteBackend", id: 0x100, slot: 2 },
    ];
    expect(renderBatch(ops, DIR)).toBe(
      [
        `map update pinned ${DIR}/wn_backends key hex 01 00 00 00 00 00 00 00 value hex 0a b4 00 01 ${z(12)} 1f 90 04 00`,
        `map update pinned ${DIR}/wn_services key hex ac 1e 00 29 ${z(12)} 00 50 06 04 value hex 01 00 00 00 01 00 00 00 30 2a 00 00 00 00 00 00`,
        `map delete pinned ${DIR}/wn_services key hex fd ${z(14)} 01 00 35 11 06`,
        `map delete pinned ${DIR}/wn_backends key hex 00 01 00 00 02 00 00 00`,
        "",
      ].join("\n"),
    );
  });

  it("nothing to do: an empty script", () => {
    expect(renderBatch([], DIR)).toBe("");
  });

  it("refuses a maps directory bpftool batch cannot carry", () => {
    expect(() => renderBatch([], "maps")).toThrow(UnsafePinPathError);
  });
});

describe("checkPinPath", () => {
  it("accepts absolute paths without blanks or quotes", () => {
    expect(checkPinPath(DIR)).toBe(DIR);
    expect(checkPinPath("/sys/fs/bpf/wn-test_1.2")).toBe("/sys/fs/bpf/wn-test_1.2");
  });

  it("rejects relative paths, blanks, quotes, backslashes and comment marks", () => {
    for (const bad of [
      "",
      "sys/fs/bpf",
      "./maps",
      "/sys/fs/bpf/a b",
      "/sys/fs/bpf/a\tb",
      "/sys/fs/bpf/a\nb",
      '/sys/fs/bpf/a"b',
      "/sys/fs/bpf/a'b",
      "/sys/fs/bpf/a\\b",
      "/sys/fs/bpf/a#b",
    ]) {
      expect(() => checkPinPath(bad), JSON.stringify(bad)).toThrow(UnsafePinPathError);
    }
    try {
      checkPinPath("/a b");
      expect.unreachable();
    } catch (e) {
      expect((e as UnsafePinPathError).code).toBe("EBPF_UNSAFE_PIN_PATH");
      expect((e as UnsafePinPathError).path).toBe("/a b");
    }
  });
});
