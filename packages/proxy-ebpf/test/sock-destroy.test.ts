import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandOutput, CommandRunner, StaleConntrack } from "@worknode/core";
import { afterEach, describe, expect, it } from "vitest";
import { UnsafePinPathError } from "../src/maps/batch.js";
import { MapLayoutError } from "../src/maps/layout.js";
import {
  goneUdpBackends,
  listNetnsHandles,
  netnsTargets,
  parseEndpointAddress,
  parseIteratorOutput,
  renderGoneBackendsBatch,
  runDestroyIterator,
} from "../src/sock-destroy.js";

const z = (n: number) => new Array<string>(n).fill("00").join(" ");
const udp = (endpoint: string | undefined, serviceIP = "172.30.0.10"): StaleConntrack => ({
  serviceIP,
  port: 53,
  protocol: "UDP",
  ...(endpoint !== undefined ? { endpoint } : {}),
});

describe("parseEndpointAddress", () => {
  it("reads ip:port and [ipv6]:port", () => {
    expect(parseEndpointAddress("10.1.0.5:5353")).toEqual({ ip: "10.1.0.5", port: 5353 });
    expect(parseEndpointAddress("[fd00::5]:53")).toEqual({ ip: "fd00::5", port: 53 });
  });

  it("rejects anything else", () => {
    for (const bad of ["10.1.0.5", "fd00::5:53", "[fd00::5]", "host:53", "10.1.0.5:", ":53"])
      expect(() => parseEndpointAddress(bad), bad).toThrow(MapLayoutError);
  });
});

describe("goneUdpBackends", () => {
  it("takes the endpoints of UDP entries, once each, in order", () => {
    const stale: StaleConntrack[] = [
      udp("10.1.0.5:5353"),
      udp("10.1.0.5:5353", "198.51.100.1"), // same endpoint through an external IP
      udp("10.1.0.5:5353", ""), // and through the node port
      udp("[fd00::5]:5353", "fd00:30::10"),
      udp("10.1.0.6:5353"),
    ];
    expect(goneUdpBackends(stale)).toEqual([
      { ip: "10.1.0.5", port: 5353 },
      { ip: "fd00::5", port: 5353 },
      { ip: "10.1.0.6", port: 5353 },
    ]);
  });

  it("leaves out frontend-wide entries, SCTP, TCP and unparsable endpoints", () => {
    const stale: StaleConntrack[] = [
      udp(undefined),
      { serviceIP: "172.30.0.11", port: 9, protocol: "SCTP", endpoint: "10.1.0.7:9" },
      { serviceIP: "172.30.0.12", port: 80, protocol: "TCP", endpoint: "10.1.0.8:80" },
      udp("not-an-address"),
    ];
    expect(goneUdpBackends(stale)).toEqual([]);
  });

  it("treats equal addresses written differently as one backend", () => {
    expect(goneUdpBackends([udp("[fd00::5]:53"), udp("[fd00:0:0::5]:53")])).toEqual([
      { ip: "fd00::5", port: 53 },
    ]);
  });
});

describe("renderGoneBackendsBatch", () => {
  const PIN = "/sys/fs/bpf/worknode/progs-1-2/wn_gone_backends";
  const backends = [
    { ip: "10.180.0.1", port: 8080 },
    { ip: "fd00::1", port: 53 },
  ];

  it("update lines: wn_backend_value keys (address, port in network order, family), value 01", () => {
    expect(renderGoneBackendsBatch(backends, PIN, "update")).toBe(
      [
        `map update pinned ${PIN} key hex 0a b4 00 01 ${z(12)} 1f 90 04 00 value hex 01`,
        `map update pinned ${PIN} key hex fd ${z(14)} 01 00 35 06 00 value hex 01`,
        "",
      ].join("\n"),
    );
  });

  it("delete lines for the same keys, and nothing for no backends", () => {
    expect(renderGoneBackendsBatch(backends, PIN, "delete")).toBe(
      [
        `map delete pinned ${PIN} key hex 0a b4 00 01 ${z(12)} 1f 90 04 00`,
        `map delete pinned ${PIN} key hex fd ${z(14)} 01 00 35 06 00`,
        "",
      ].join("\n"),
    );
    expect(renderGoneBackendsBatch([], PIN, "update")).toBe("");
  });

  it("refuses a pin path bpftool batch cannot carry", () => {
    expect(() => renderGoneBackendsBatch(backends, "/sys/fs/bpf/a b/m", "update")).toThrow(
      UnsafePinPathError,
    );
  });
});

describe("netnsTargets", () => {
  it("one target per namespace, in order of first appearance, other handles as fallbacks", () => {
    const handles = [
      { path: "/proc/1/ns/net", id: "net:[4026531840]" },
      { path: "/proc/200/ns/net", id: "net:[4026532100]" },
      { path: "/proc/201/ns/net", id: "net:[4026532100]" },
      { path: "/proc/2/ns/net", id: "net:[4026531840]" },
      { path: "/run/netns/pod-a", id: "net:[4026532100]" },
      { path: "/run/netns/empty", id: "net:[4026532200]" },
      { path: "/proc/201/ns/net", id: "net:[4026532100]" },
    ];
    expect(netnsTargets(handles)).toEqual([
      { id: "net:[4026531840]", paths: ["/proc/1/ns/net", "/proc/2/ns/net"] },
      { id: "net:[4026532100]", paths: ["/proc/200/ns/net", "/proc/201/ns/net", "/run/netns/pod-a"] },
      { id: "net:[4026532200]", paths: ["/run/netns/empty"] },
    ]);
    expect(netnsTargets([])).toEqual([]);
  });
});

describe("parseIteratorOutput", () => {
  it("counts destroyed sockets and collects refusals", () => {
    expect(parseIteratorOutput("destroyed 0\ndestroyed 0\ndestroyed -95\n")).toEqual({
      destroyed: 2,
      refused: [-95],
    });
    expect(parseIteratorOutput("")).toEqual({ destroyed: 0, refused: [] });
  });
});

describe("listNetnsHandles", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("reads /proc/<pid>/ns/net links, skipping non-pids and processes without one", async () => {
    dir = await mkdtemp(join(tmpdir(), "wn-netns-"));
    const proc = join(dir, "proc");
    for (const [pid, link] of [
      ["1", "net:[4026531840]"],
      ["42", "net:[4026532100]"],
    ] as const) {
      await mkdir(join(proc, pid, "ns"), { recursive: true });
      await symlink(link, join(proc, pid, "ns", "net"));
    }
    await mkdir(join(proc, "77"), { recursive: true }); // exited
    await writeFile(join(proc, "self"), "");
    await writeFile(join(proc, "meminfo"), "");
    const handles = await listNetnsHandles(proc, join(dir, "no-run-netns"));
    expect(handles.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: `${proc}/1/ns/net`, id: "net:[4026531840]" },
      { path: `${proc}/42/ns/net`, id: "net:[4026532100]" },
    ]);
  });

  it("leaves out plain files in the named-namespace directory (not bind-mounted namespaces)", async () => {
    dir = await mkdtemp(join(tmpdir(), "wn-netns-"));
    const proc = join(dir, "proc");
    const run = join(dir, "netns");
    await mkdir(proc);
    await mkdir(run);
    await writeFile(join(run, "stale"), "");
    expect(await listNetnsHandles(proc, run)).toEqual([]);
  });
});

/** A runner that answers `nsenter --net=<path> cat <pin>` from a table, recording the calls. */
function fakeRunner(answers: Record<string, CommandOutput>): CommandRunner & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    async exec(command, args) {
      calls.push([command, ...args]);
      const path = (args[0] ?? "").replace(/^--net=/, "");
      return answers[path] ?? { code: 1, stdout: "", stderr: `nsenter: cannot open ${path}` };
    },
  };
}

describe("runDestroyIterator", () => {
  const PIN = "/sys/fs/bpf/wn/progs/iter-udp-destroy";

  it("reads the iterator once per namespace with nsenter and cat, and adds up the destroyed sockets", async () => {
    const runner = fakeRunner({
      "/proc/1/ns/net": { code: 0, stdout: "destroyed 0\n", stderr: "" },
      "/proc/200/ns/net": { code: 0, stdout: "destroyed 0\ndestroyed 0\n", stderr: "" },
    });
    const result = await runDestroyIterator(runner, PIN, [
      { id: "net:[1]", paths: ["/proc/1/ns/net", "/proc/2/ns/net"] },
      { id: "net:[2]", paths: ["/proc/200/ns/net"] },
    ]);
    expect(result).toEqual({ namespaces: 2, destroyed: 3, errors: [] });
    expect(runner.calls).toEqual([
      ["nsenter", "--net=/proc/1/ns/net", "cat", PIN],
      ["nsenter", "--net=/proc/200/ns/net", "cat", PIN],
    ]);
  });

  it("falls back to another handle when a process vanished, and reports a namespace it cannot enter", async () => {
    // /proc/<huge pid> does not exist: it "exited". /proc/self/ns/net exists but fails here.
    const gone = "/proc/999999999/ns/net";
    const runner = fakeRunner({
      "/run/netns/x": { code: 0, stdout: "destroyed 0\ndestroyed -22\n", stderr: "" },
      "/proc/self/ns/net": { code: 1, stdout: "", stderr: "cat: Permission denied" },
    });
    const result = await runDestroyIterator(runner, PIN, [
      { id: "net:[7]", paths: [gone, "/run/netns/x"] },
      { id: "net:[8]", paths: ["/proc/self/ns/net", "/run/netns/never-tried"] },
      { id: "net:[9]", paths: [gone] },
    ]);
    expect(result.namespaces).toBe(1);
    expect(result.destroyed).toBe(1);
    expect(result.errors).toEqual([
      "net:[7]: bpf_sock_destroy returned -22",
      "net:[8] (/proc/self/ns/net): cat: Permission denied",
    ]);
    expect(runner.calls.map((c) => c[1])).toEqual([
      `--net=${gone}`,
      "--net=/run/netns/x",
      "--net=/proc/self/ns/net",
      `--net=${gone}`,
    ]);
  });
});
