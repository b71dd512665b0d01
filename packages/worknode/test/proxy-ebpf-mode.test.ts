/**
 * `--proxy-mode ebpf` without root and without touching bpffs or cgroups: the
 * `--ebpf-*` flags and the config file's `ebpf:` section, mode selection in `worknode
 * proxy` and `worknode node` (recording backends), the ebpf backend's availability check
 * and the cleanup of every mode through a recording command runner (the ebpf removal
 * itself is injected, or fails on a non-cgroup directory before it removes anything),
 * periodic syncs in ebpf mode, and `plan` / `plan --diff` (pinned maps faked by empty
 * files and `bpftool map dump` answers).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type CommandOutput,
  type CommandRunner,
  ConfigError,
  createLogger,
  createMetricsRegistry,
} from "@worknode/core";
import {
  EbpfProxier,
  EbpfUnavailableError,
  encodeBackendKey,
  encodeBackendValue,
  encodeServiceKey,
  encodeServiceValue,
  type Frontend,
  type MapOp,
} from "@worknode/proxy-ebpf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeCommand } from "../src/commands/node.js";
import { createProxyCommand } from "../src/commands/proxy.js";
import {
  checkEbpfAvailable,
  cleanupAllModes,
  createEbpfBackend,
  createIptablesBackend,
  createNftablesBackend,
  createProxyBackend,
  type EbpfBackendOptions,
} from "../src/commands/proxy-backend.js";
import {
  checkProxyMode,
  PROXY_FLAGS,
  type ProxyMode,
  parseKubeProxyConfiguration,
  resolveProxySettings,
} from "../src/commands/proxy-config.js";
import { describeMapOp, formatEbpfDiff } from "../src/commands/proxy-ebpf-diff.js";
import { createProxyPipeline } from "../src/commands/proxy-pipeline.js";
import { CliUsageError } from "../src/flags.js";
import { captureIO as capture, eventually, serviceYaml, webServicesYaml } from "./helpers/proxy-setup.js";
import {
  type RecordedCall,
  RecordingProxier,
  recordingBackend,
  recordingBackends,
  recordingRunner,
  runUntilFirstSync,
} from "./helpers/recording-backend.js";

const HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";
const BPFFS = "cafe4a11";
const CGROUP2 = "63677270";
const SILENT = createLogger({ name: "t", level: "silent" });

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "worknode-ebpf-mode-"));
  await writeFile(file("services.yaml"), webServicesYaml());
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** One call a recording runner saw, or the injected ebpf removal (command `remove-pinned`). */
type Call = RecordedCall;

/** `stat -f -c %t` answers by path (absent paths fail), everything else from `rest`. */
function statAnswers(
  types: Readonly<Record<string, string>>,
  rest: (command: string, args: readonly string[]) => Partial<CommandOutput> = () => ({}),
) {
  return (command: string, args: readonly string[]): Partial<CommandOutput> => {
    if (command !== "stat") return rest(command, args);
    const type = types[args.at(-1) ?? ""];
    return type === undefined
      ? { code: 1, stderr: `stat: cannot read file system information for '${args.at(-1)}'` }
      : { stdout: `${type}\n` };
  };
}

/** The ebpf options of a test: its own pin path, and a removal that only records itself. */
function ebpfTarget(calls: Call[], pinPath = "/test-bpffs/worknode", fail?: Error): EbpfBackendOptions {
  return {
    pinPath,
    cgroupPath: "/test-cgroup",
    removePinned: async (t) => {
      calls.push({ command: "remove-pinned", args: [t.cgroupPath, t.pinPath], stdin: undefined });
      if (fail) throw fail;
    },
  };
}

const line = (c: Call) => [c.command, ...c.args].join(" ");

describe("ebpf settings: flags and the config file's ebpf section", () => {
  it("ebpf is an implemented mode; an unknown mode's error lists it", () => {
    expect(checkProxyMode("ebpf")).toBe("ebpf");
    expect(() => checkProxyMode("bpf")).toThrow(
      new CliUsageError(
        '--proxy-mode: unknown proxy mode "bpf" (known: iptables, userspace, nftables, ipvs, ebpf)',
      ),
    );
    expect(PROXY_FLAGS["proxy-mode"].help).toMatch(/iptables, nftables or ebpf/);
    expect(PROXY_FLAGS["ebpf-pin-path"].default).toBe("/sys/fs/bpf/worknode");
  });

  it("reads ebpf.cgroupPath and ebpf.pinPath; ebpf mode defaults the pin path and keeps localhost node ports", () => {
    const parsed = parseKubeProxyConfiguration(
      `${HEADER}mode: ebpf\nebpf:\n  cgroupPath: /sys/fs/cgroup/pods\n  pinPath: /sys/fs/bpf/wn-test\n`,
      "c.yaml",
    );
    expect(parsed.ignoredFields).toEqual([]);
    expect(parsed.settings).toEqual({
      mode: "ebpf",
      ebpf: { cgroupPath: "/sys/fs/cgroup/pods", pinPath: "/sys/fs/bpf/wn-test" },
    });
    expect(resolveProxySettings({}, parsed.settings, "c.yaml")).toMatchObject({
      mode: "ebpf",
      ebpf: { cgroupPath: "/sys/fs/cgroup/pods", pinPath: "/sys/fs/bpf/wn-test" },
      localhostNodePorts: true,
    });
    // Flags override the file, field by field.
    expect(
      resolveProxySettings({ ebpf: { pinPath: "/sys/fs/bpf/other/" } }, parsed.settings, "c.yaml").ebpf,
    ).toEqual({ cgroupPath: "/sys/fs/cgroup/pods", pinPath: "/sys/fs/bpf/other" });
    // Nothing given: the cgroup v2 root (found at start) and /sys/fs/bpf/worknode.
    expect(resolveProxySettings({ mode: "ebpf" }, undefined).ebpf).toEqual({
      cgroupPath: undefined,
      pinPath: "/sys/fs/bpf/worknode",
    });
    // iptables.localhostNodePorts applies in ebpf mode.
    const noLocal = parseKubeProxyConfiguration(
      `${HEADER}mode: ebpf\niptables: {localhostNodePorts: false}\n`,
      "c.yaml",
    ).settings;
    expect(resolveProxySettings({}, noLocal, "c.yaml").localhostNodePorts).toBe(false);
  });

  it("other modes carry the ebpf paths only when given (for removing the ebpf mode's leftovers)", () => {
    expect(resolveProxySettings({}, undefined).ebpf).toBeUndefined();
    expect(resolveProxySettings({ mode: "nftables" }, undefined).ebpf).toBeUndefined();
    expect(resolveProxySettings({ ebpf: { pinPath: "/sys/fs/bpf/x" } }, undefined)).toMatchObject({
      mode: "iptables",
      ebpf: { cgroupPath: undefined, pinPath: "/sys/fs/bpf/x" },
    });
  });

  it("bad paths name the flag (usage error) or the file's field", () => {
    expect(() =>
      resolveProxySettings({ mode: "ebpf", ebpf: { pinPath: "bpf/worknode" } }, undefined),
    ).toThrow(
      new CliUsageError('--ebpf-pin-path: "bpf/worknode" must be an absolute path without blanks or quotes'),
    );
    expect(() => resolveProxySettings({ ebpf: { cgroupPath: "pods" } }, undefined)).toThrow(
      new CliUsageError('--ebpf-cgroup-path: "pods" is not an absolute path'),
    );
    const file = parseKubeProxyConfiguration(
      `${HEADER}mode: ebpf\nebpf: {pinPath: "/sys/fs/bpf/my pins"}\n`,
      "c.yaml",
    ).settings;
    let err: unknown;
    try {
      resolveProxySettings({}, file, "c.yaml");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).not.toBeInstanceOf(CliUsageError);
    expect((err as Error).message).toBe(
      '--config c.yaml: ebpf.pinPath: "/sys/fs/bpf/my pins" must be an absolute path without blanks or quotes',
    );
    expect(() => resolveProxySettings({ ebpf: { pinPath: "/" } }, undefined)).toThrow(
      '--ebpf-pin-path: "/" cannot be the pin directory',
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}ebpf: {pinpath: /sys/fs/bpf/x}\n`, "c.yaml")).toThrow(
      '--config c.yaml: unknown field "ebpf.pinpath" (did you mean "pinPath"?)',
    );
    expect(() => parseKubeProxyConfiguration(`${HEADER}ebpf: {cgroupPath: 3}\n`, "c.yaml")).toThrow(
      "ebpf.cgroupPath: expected a string, got 3",
    );
  });

  it("in ebpf mode the NAT flags do not apply (no packet is masqueraded)", () => {
    const r = resolveProxySettings(
      { mode: "ebpf", masqueradeBit: 3, masqueradeAll: true, localhostNodePorts: false },
      undefined,
    );
    expect(r.unusedFlags).toEqual(["--iptables-masquerade-bit", "--masquerade-all"]);
    expect(r.localhostNodePorts).toBe(false);
    expect(resolveProxySettings({ masqueradeAll: true }, undefined).unusedFlags).toBeUndefined();
  });
});

describe("selecting the ebpf mode", () => {
  it("worknode proxy --proxy-mode ebpf: the ebpf backend with the --ebpf-* paths; the proxier gets localhostNodePorts", async () => {
    const b = recordingBackends(["IPv4", "IPv6"]);
    const r = await runUntilFirstSync(
      [
        "--proxy-mode",
        "ebpf",
        "--ebpf-cgroup-path",
        "/sys/fs/cgroup/worknode-test",
        "--ebpf-pin-path",
        "/sys/fs/bpf/worknode-test",
        "--iptables-masquerade-bit",
        "3",
      ],
      b,
      file("services.yaml"),
    );
    expect(r.status).toBe(0);
    expect(b.state.modes).toEqual(["ebpf"]);
    expect(b.state.options).toEqual([
      { ebpf: { cgroupPath: "/sys/fs/cgroup/worknode-test", pinPath: "/sys/fs/bpf/worknode-test" } },
    ]);
    expect(r.proxier.mode).toBe("ebpf");
    expect(r.proxier.options).toMatchObject({
      nodeName: "node-1",
      families: ["IPv4", "IPv6"],
      localhostNodePorts: true,
    });
    expect(r.stderr).toContain("these flags do not apply to this proxy mode");
    expect(r.stderr).toContain("--iptables-masquerade-bit");

    // The file's mode and section.
    await writeFile(file("ebpf.yaml"), `${HEADER}mode: ebpf\nebpf: {pinPath: /sys/fs/bpf/from-file}\n`);
    const byFile = recordingBackends(["IPv4", "IPv6"]);
    expect(
      (await runUntilFirstSync(["--config", file("ebpf.yaml")], byFile, file("services.yaml"))).status,
    ).toBe(0);
    expect(byFile.state.modes).toEqual(["ebpf"]);
    expect(byFile.state.options).toEqual([
      { ebpf: { cgroupPath: undefined, pinPath: "/sys/fs/bpf/from-file" } },
    ]);
  });

  it("worknode proxy: iptables mode passes no ebpf paths unless given; --cleanup gets them", async () => {
    const plain = recordingBackends(["IPv4", "IPv6"]);
    await runUntilFirstSync([], plain, file("services.yaml"));
    expect(plain.state.modes).toEqual(["iptables"]);
    expect(plain.state.options).toEqual([undefined]);

    const b = recordingBackends(["IPv4", "IPv6"]);
    const status = await createProxyCommand({ backendFor: b.backendFor }).run(
      ["--cleanup", "--ebpf-pin-path", "/sys/fs/bpf/old", "--log-level", "error"],
      capture().io,
    );
    expect(status).toBe(0);
    expect(b.state).toMatchObject({
      modes: ["iptables"],
      options: [{ ebpf: { cgroupPath: undefined, pinPath: "/sys/fs/bpf/old" } }],
      cleanups: 1,
    });
  });

  it("worknode proxy --help lists ebpf and its flags", async () => {
    const { io, out } = capture();
    expect(await createProxyCommand().run(["--help"], io)).toBe(0);
    expect(out.stdout).toMatch(/--proxy-mode string\s+Which proxy mode to use: iptables, nftables or ebpf/);
    expect(out.stdout).toMatch(/--ebpf-cgroup-path string\s+ebpf mode: cgroup v2 directory/);
    expect(out.stdout).toMatch(/--ebpf-pin-path string\s+.*\(default "\/sys\/fs\/bpf\/worknode"\)/);
  });

  it("worknode node: --proxy-mode ebpf selects the ebpf backend with the paths; a relative pin path is a usage error", async () => {
    const b = recordingBackends(["IPv4", "IPv6"]);
    const { io, out } = capture();
    const status = await createNodeCommand({ proxyBackendFor: b.backendFor }).run(
      ["--proxy-mode", "ebpf", "--ebpf-pin-path", "/sys/fs/bpf/node-test", "--cleanup"],
      io,
    );
    expect(status).toBe(0);
    expect(b.state).toMatchObject({
      modes: ["ebpf"],
      options: [{ ebpf: { cgroupPath: undefined, pinPath: "/sys/fs/bpf/node-test" } }],
      cleanups: 1,
    });
    expect(out.stdout).toBe("removed the proxy rules (IPv4, IPv6)\n");
    // The default pin path goes to the other modes too (they remove the ebpf mode's leftovers).
    await createNodeCommand({ proxyBackendFor: b.backendFor }).run(
      ["--cleanup", "--ebpf-cgroup-path", "/sys/fs/cgroup/x"],
      capture().io,
    );
    expect(b.state.modes).toEqual(["ebpf", "iptables"]);
    expect(b.state.options[1]).toEqual({
      ebpf: { cgroupPath: "/sys/fs/cgroup/x", pinPath: "/sys/fs/bpf/worknode" },
    });
    await expect(
      createNodeCommand({ proxyBackendFor: b.backendFor }).run(
        ["--proxy-mode", "ebpf", "--ebpf-pin-path", "pins", "--cleanup"],
        capture().io,
      ),
    ).rejects.toThrow(CliUsageError);
    expect(b.state.modes).toEqual(["ebpf", "iptables"]);
  });

  it("createProxyBackend picks the ebpf backend, whose proxier is an EbpfProxier on the given pin path", () => {
    const { runner, calls } = recordingRunner();
    const backend = createProxyBackend("ebpf", runner, { ebpf: { pinPath: path.join(dir, "pins") } });
    expect(backend.mode).toBe("ebpf");
    const proxier = backend.createProxier({
      nodeName: "n",
      nodeIPs: ["192.168.1.10"],
      families: ["IPv4", "IPv6"],
      clusterCIDRs: ["10.244.0.0/16"],
      masqueradeAll: true,
      nodePortAddresses: [],
      masqueradeBit: 14,
      localhostNodePorts: false,
      logger: SILENT,
    });
    expect(proxier).toBeInstanceOf(EbpfProxier);
    expect(proxier.mode).toBe("ebpf");
    expect((proxier as EbpfProxier).families).toEqual(["IPv4", "IPv6"]);
    expect((proxier as EbpfProxier).mapsPath).toBe(path.join(dir, "pins", "maps-v1"));
    // Making the proxier runs nothing.
    expect(calls).toEqual([]);
  });
});

describe("the ebpf backend's availability check (through the runner)", () => {
  const options = { pinPath: "/test-bpffs/worknode", cgroupPath: "/test-cgroup" };

  it("bpffs at the pin path's parent, a cgroup v2 directory and a running bpftool: both families", async () => {
    const { runner, calls } = recordingRunner(statAnswers({ "/test-bpffs": BPFFS, "/test-cgroup": CGROUP2 }));
    expect(await createEbpfBackend(runner, options).detectFamilies()).toEqual(["IPv4", "IPv6"]);
    expect(calls.map(line)).toEqual([
      "stat -f -c %t /test-bpffs",
      "stat -f -c %t /test-cgroup",
      "bpftool version",
    ]);
    // No cgroup path: the cgroup v2 root.
    const root = recordingRunner(statAnswers({ "/test-bpffs": BPFFS, "/test-root": CGROUP2 }));
    expect(
      await checkEbpfAvailable(root.runner, {
        pinPath: "/test-bpffs/worknode",
        cgroup2Root: async () => "/test-root",
      }),
    ).toBe("/test-root");
  });

  it("says what is missing, as an EbpfUnavailableError", async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /^proxy mode ebpf: \/test-bpffs is not there; mount bpffs: mount -t bpf bpf \/test-bpffs$/],
      [
        { "/test-bpffs": "62656572" },
        /^proxy mode ebpf: \/test-bpffs is not a bpffs mount; mount bpffs: mount -t bpf bpf \/test-bpffs$/,
      ],
      [{ "/test-bpffs": BPFFS }, /^proxy mode ebpf: cgroup \/test-cgroup is not there/],
      [
        { "/test-bpffs": BPFFS, "/test-cgroup": "27e0eb" },
        /^proxy mode ebpf: \/test-cgroup is not a cgroup v2 directory \(--ebpf-cgroup-path\)$/,
      ],
    ];
    for (const [types, message] of cases) {
      const { runner } = recordingRunner(statAnswers(types));
      const err = await createEbpfBackend(runner, options)
        .detectFamilies()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EbpfUnavailableError);
      expect((err as Error).message).toMatch(message);
    }
    const noBpftool = recordingRunner(
      statAnswers({ "/test-bpffs": BPFFS, "/test-cgroup": CGROUP2 }, (cmd) =>
        cmd === "bpftool" ? { code: -1, stderr: "bpftool: spawn bpftool ENOENT" } : {},
      ),
    );
    await expect(createEbpfBackend(noBpftool.runner, options).detectFamilies()).rejects.toThrow(
      "proxy mode ebpf: bpftool does not run (bpftool: spawn bpftool ENOENT); install bpftool (and run as root)",
    );
  });

  it("the pipeline stops with that error before removing other modes' leftovers", async () => {
    const { runner, calls } = recordingRunner(statAnswers({}));
    await expect(
      createProxyPipeline({
        backend: createEbpfBackend(runner, options),
        settings: {
          clusterCIDRs: [],
          masqueradeAll: false,
          nodePortAddresses: [],
          masqueradeBit: 14,
          localhostNodePorts: true,
          minSyncPeriodMs: 0,
          syncPeriodMs: 30_000,
        },
        nodeName: "n",
        nodeIPs: [],
        registry: createMetricsRegistry(),
        logger: SILENT,
      }),
    ).rejects.toThrow(EbpfUnavailableError);
    expect(calls.map(line)).toEqual(["stat -f -c %t /test-bpffs"]);
  });
});

describe("periodic syncs in ebpf mode", () => {
  /** The `full` flag of the first `count` syncs of a pipeline whose sync period is 30 ms. */
  async function fullFlags(mode: ProxyMode, count: number): Promise<boolean[]> {
    const { backend, state } = recordingBackend((o) => new RecordingProxier(mode, o), ["IPv4"], { mode });
    const { controller } = await createProxyPipeline({
      backend,
      settings: {
        clusterCIDRs: [],
        masqueradeAll: false,
        nodePortAddresses: [],
        masqueradeBit: 14,
        localhostNodePorts: true,
        minSyncPeriodMs: 0,
        syncPeriodMs: 30,
      },
      nodeName: "n",
      nodeIPs: [],
      registry: createMetricsRegistry(),
      logger: SILENT,
    });
    controller.markServicesSynced();
    controller.markEndpointSlicesSynced();
    controller.start();
    try {
      await eventually(
        "periodic syncs",
        async () => (state.proxiers[0]?.syncs.length ?? 0) >= count,
        10_000,
        10,
      );
    } finally {
      await controller.stop();
    }
    return state.proxiers[0]!.syncs.slice(0, count).map((s) => s.full);
  }

  it("are partial, as in nftables mode (iptables mode's are full)", async () => {
    expect(await fullFlags("ebpf", 3)).toEqual([true, false, false]);
    expect(await fullFlags("nftables", 3)).toEqual([true, false, false]);
    expect(await fullFlags("iptables", 3)).toEqual([true, true, true]);
  });
});

describe("cleanup of every mode, the ebpf mode included", () => {
  const pin = "/test-bpffs/worknode";

  it("--cleanup in any mode removes iptables, then nftables, then the ebpf pins", async () => {
    for (const mode of ["iptables", "nftables", "ebpf"] as const) {
      const { runner, calls } = recordingRunner(statAnswers({ [pin]: BPFFS }));
      const families = await createProxyBackend(mode, runner, { ebpf: ebpfTarget(calls, pin) }).cleanup(
        SILENT,
      );
      expect(families).toEqual(["IPv4", "IPv6"]);
      const order = calls
        .map((c) =>
          /^ip6?tables/.test(c.command)
            ? "iptables"
            : c.command === "nft" && c.args[0] === "-f"
              ? "nftables"
              : c.command === "remove-pinned"
                ? "ebpf"
                : undefined,
        )
        .filter((k) => k !== undefined);
      expect(order.indexOf("iptables")).toBeGreaterThanOrEqual(0);
      expect(order.lastIndexOf("iptables")).toBeLessThan(order.indexOf("nftables"));
      expect(order.at(-1)).toBe("ebpf");
      expect(order.filter((k) => k === "ebpf")).toHaveLength(1);
      const removal = calls.findIndex((c) => c.command === "remove-pinned");
      expect(calls[removal - 1]).toMatchObject({ command: "stat", args: ["-f", "-c", "%t", pin] });
      expect(calls[removal]!.args).toEqual(["/test-cgroup", pin]);
    }
  });

  it("no bpffs, no pin directory, or a pin path off bpffs: nothing to clean up, quietly", async () => {
    const cases: Record<string, string>[] = [{}, { "/test-bpffs": BPFFS }, { [pin]: "ef53" }];
    for (const types of cases) {
      const { runner, calls } = recordingRunner(statAnswers(types));
      const logs: string[] = [];
      const logger = createLogger({ name: "t", level: "info", destination: { write: (l) => logs.push(l) } });
      await cleanupAllModes(runner, logger, ebpfTarget(calls, pin));
      expect(calls.some((c) => c.command === "remove-pinned")).toBe(false);
      expect(logs.join("")).toContain("no ebpf mode pin directory on bpffs; nothing to clean up");
    }
  });

  it("a failed ebpf removal is reported like the others, after the other modes were cleaned", async () => {
    const { runner, calls } = recordingRunner(statAnswers({ [pin]: BPFFS }));
    await expect(
      cleanupAllModes(runner, SILENT, ebpfTarget(calls, pin, new Error("bpftool cgroup detach failed"))),
    ).rejects.toThrow(`cleanup incomplete: ebpf ${pin}: bpftool cgroup detach failed`);
    expect(calls.some((c) => c.command === "nft" && c.args[0] === "-f")).toBe(true);
    expect(calls.some((c) => /^ip6?tables/.test(c.command))).toBe(true);
  });

  it("the default removal is the EbpfProxier's: a cgroup that is not cgroup v2 fails before anything is removed", async () => {
    const pins = path.join(dir, "fake-pins");
    await mkdir(pins, { recursive: true });
    const { runner, calls } = recordingRunner(statAnswers({ [pins]: BPFFS }));
    await expect(cleanupAllModes(runner, SILENT, { pinPath: pins, cgroupPath: dir })).rejects.toThrow(
      new RegExp(`ebpf ${pins}: .*${dir} is not a cgroup v2 directory`),
    );
    expect(calls.some((c) => c.command === "bpftool")).toBe(false);
    // The pin directory is still there: a second attempt sees it again.
    const again = recordingRunner(statAnswers({ [pins]: BPFFS }));
    await expect(cleanupAllModes(again.runner, SILENT, { pinPath: pins, cgroupPath: dir })).rejects.toThrow(
      /is not a cgroup v2 directory/,
    );
  });

  it("at start, each mode removes the two other modes' leftovers and nothing of its own", async () => {
    const kinds = (calls: Call[]) => ({
      iptables: calls.some((c) => c.command.startsWith("ip") && c.command.includes("tables")),
      nftables: calls.some((c) => c.command === "nft" && c.args[0] === "-f"),
      ebpf: calls.some((c) => c.command === "remove-pinned"),
    });
    // The ebpf mode serving the whole node (its cgroup is the cgroup v2 root) replaces the others.
    const ebpf = recordingRunner(statAnswers({ [pin]: BPFFS }));
    const wholeNode = { ...ebpfTarget(ebpf.calls, pin), cgroup2Root: async () => "/test-cgroup" };
    await createEbpfBackend(ebpf.runner, wholeNode).cleanupOtherModes!(SILENT);
    expect(kinds(ebpf.calls)).toEqual({ iptables: true, nftables: true, ebpf: false });
    expect(ebpf.calls.some((c) => c.command === "stat")).toBe(false);

    // Serving one cgroup below the root, it runs beside the other modes and leaves them alone.
    const scoped = recordingRunner(statAnswers({ [pin]: BPFFS }));
    const oneCgroup = { ...ebpfTarget(scoped.calls, pin), cgroup2Root: async () => "/" };
    await createEbpfBackend(scoped.runner, oneCgroup).cleanupOtherModes!(SILENT);
    expect(scoped.calls).toEqual([]);

    const ipt = recordingRunner(statAnswers({ [pin]: BPFFS }));
    await createIptablesBackend(ipt.runner, ebpfTarget(ipt.calls, pin)).cleanupOtherModes!(SILENT);
    expect(kinds(ipt.calls)).toEqual({ iptables: false, nftables: true, ebpf: true });
    expect(ipt.calls.at(-1)!.command).toBe("remove-pinned");

    const nft = recordingRunner(statAnswers({ [pin]: BPFFS }));
    await createNftablesBackend(nft.runner, ebpfTarget(nft.calls, pin)).cleanupOtherModes!(SILENT);
    expect(kinds(nft.calls)).toEqual({ iptables: true, nftables: false, ebpf: true });
    expect(nft.calls.at(-1)!.command).toBe("remove-pinned");

    // A failure of the ebpf removal names it; the nftables removal before it still ran.
    const failing = recordingRunner(statAnswers({ [pin]: BPFFS }));
    await expect(
      createIptablesBackend(failing.runner, ebpfTarget(failing.calls, pin, new Error("busy")))
        .cleanupOtherModes!(SILENT),
    ).rejects.toThrow(`ebpf ${pin}: busy`);
    expect(kinds(failing.calls).nftables).toBe(true);
  });
});

/** `bpftool -j map dump` output of entries given as bytes. */
function dump(entries: { key: Uint8Array; value: Uint8Array }[]): string {
  const words = (b: Uint8Array) => Array.from(b, (x) => `0x${x.toString(16).padStart(2, "0")}`);
  return JSON.stringify(entries.map((e) => ({ key: words(e.key), value: words(e.value) })));
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

describe("worknode proxy plan --proxy-mode ebpf", () => {
  async function plan(argv: string[], runner: CommandRunner, services = file("services.yaml")) {
    const { io, out } = capture();
    const status = await createProxyCommand({
      planRunner: runner,
      nodeIPs: () => ["192.168.1.10"],
      hostname: () => "node-1",
    }).run(["plan", "--services-file", services, "--proxy-mode", "ebpf", ...argv], io);
    return { status, ...out };
  }

  const web: Frontend = { ip: "172.30.0.10", port: 80, protocol: "TCP" };
  const lonely: Frontend = { ip: "172.30.0.12", port: 80, protocol: "TCP" };

  it("prints the bpftool batch of a full sync onto empty maps, and runs nothing", async () => {
    const pins = path.join(dir, "plan-pins");
    const { runner, calls } = recordingRunner();
    const r = await plan(["--ebpf-pin-path", pins], runner);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(calls).toEqual([]);
    const maps = path.join(pins, "maps-v1");
    expect(r.stdout).toBe(
      [
        "# worknode proxy plan: mode ebpf, node node-1, IPv4 and IPv6: 2 service ports, 1 endpoints, 2 frontends, 1 backend slots",
        `# input of: bpftool batch file - (maps pinned in ${maps}; a full sync also deletes the entries the maps hold and the plan does not)`,
        `map update pinned ${maps}/wn_backends key hex ${hex(encodeBackendKey(1, 0))} value hex ${hex(encodeBackendValue({ ip: "10.244.0.11", port: 8080 }))}`,
        `map update pinned ${maps}/wn_services key hex ${hex(encodeServiceKey(web))} value hex ${hex(encodeServiceValue({ id: 1, count: 1, affinityTimeout: 0 }))}`,
        `map update pinned ${maps}/wn_services key hex ${hex(encodeServiceKey(lonely))} value hex ${hex(encodeServiceValue({ id: 0, count: 0, affinityTimeout: 0 }))}`,
        "",
      ].join("\n"),
    );
  });

  it("the default pin path is /sys/fs/bpf/worknode; NAT flags are reported as not applying", async () => {
    const r = await plan(["--iptables-masquerade-bit", "3"], recordingRunner().runner);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("map update pinned /sys/fs/bpf/worknode/maps-v1/wn_services key hex");
    expect(r.stderr).toBe(
      "worknode proxy plan: warning: --iptables-masquerade-bit do not apply to proxy mode ebpf; ignored\n",
    );
    await expect(plan(["--ebpf-pin-path", "relative/pins"], recordingRunner().runner)).rejects.toThrow(
      CliUsageError,
    );
  });

  it("two service ports asking for one frontend: a warning; the first keeps it", async () => {
    await writeFile(
      file("clash.yaml"),
      `${serviceYaml("a", "172.30.0.20")}---\n${serviceYaml("b", "172.30.0.20")}`,
    );
    const r = await plan(
      ["--ebpf-pin-path", path.join(dir, "p")],
      recordingRunner().runner,
      file("clash.yaml"),
    );
    expect(r.stderr).toMatch(
      /^worknode proxy plan: warning: two service ports use frontend 172\.30\.0\.20:80\/TCP: default\/\S+ keeps it, default\/\S+ is refused it\n$/,
    );
    expect(r.stdout.split("\n").filter((l) => l.startsWith("map update"))).toHaveLength(1);
  });

  it("--diff with no maps pinned: every entry is to add", async () => {
    const pins = path.join(dir, "no-pins");
    const { runner, calls } = recordingRunner();
    const r = await plan(["--diff", "--ebpf-pin-path", pins], runner);
    expect(r.status).toBe(0);
    expect(calls).toEqual([]);
    expect(r.stdout).toBe(`--- node (ebpf maps pinned in ${pins}/maps-v1)
+++ plan (ebpf)
@@ map frontends @@
+frontend 172.30.0.10:80/TCP -> group 1 (1 backend)
+frontend 172.30.0.12:80/TCP -> no backends (refused)
@@ map backend slots @@
+backend 1/0 -> 10.244.0.11:8080
# ebpf: 2 maps differ: 3 keys to add, 0 to remove
`);
  });

  it("--diff reads the pinned maps with bpftool and prints what a full sync would change", async () => {
    const pins = path.join(dir, "pins");
    const maps = path.join(pins, "maps-v1");
    await mkdir(maps, { recursive: true });
    for (const m of ["wn_services", "wn_backends", "wn_affinity", "wn_revnat"])
      await writeFile(path.join(maps, m), "");
    const old: Frontend = { ip: "172.30.0.99", port: 80, protocol: "TCP" };
    const services = dump([
      { key: encodeServiceKey(web), value: encodeServiceValue({ id: 1, count: 1, affinityTimeout: 0 }) },
      { key: encodeServiceKey(old), value: encodeServiceValue({ id: 2, count: 1, affinityTimeout: 0 }) },
    ]);
    const backends = dump([
      { key: encodeBackendKey(1, 0), value: encodeBackendValue({ ip: "10.244.0.11", port: 8080 }) },
      { key: encodeBackendKey(2, 0), value: encodeBackendValue({ ip: "10.244.0.50", port: 8080 }) },
    ]);
    const { runner, calls } = recordingRunner((cmd, args) =>
      cmd === "bpftool" ? { stdout: args.at(-1)!.endsWith("wn_services") ? services : backends } : {},
    );
    const r = await plan(["--diff", "--ebpf-pin-path", pins], runner);
    expect(r.status).toBe(0);
    expect(calls.map(line).sort()).toEqual([
      `bpftool -j map dump pinned ${maps}/wn_backends`,
      `bpftool -j map dump pinned ${maps}/wn_services`,
    ]);
    expect(r.stdout).toBe(`--- node (ebpf maps pinned in ${maps})
+++ plan (ebpf)
@@ map frontends @@
+frontend 172.30.0.12:80/TCP -> no backends (refused)
-frontend 172.30.0.99:80/TCP
@@ map backend slots @@
-backend 2/0
# ebpf: 2 maps differ: 1 key to add, 2 to remove
`);
    // bpftool failing (not root): one error naming the command.
    const denied = recordingRunner((cmd) =>
      cmd === "bpftool"
        ? { code: 255, stderr: "Error: bpf obj get (/sys/fs/bpf): Operation not permitted" }
        : {},
    );
    await expect(plan(["--diff", "--ebpf-pin-path", pins], denied.runner)).rejects.toThrow(
      /bpftool -j map dump pinned .* failed \(exit 255\): Error: bpf obj get .*Operation not permitted/,
    );
  });

  it("formats each kind of map operation on one line (pure)", () => {
    const v6: Frontend = { ip: "fd00::10", port: 53, protocol: "UDP" };
    const ops: MapOp[] = [
      { op: "putBackend", id: 7, slot: 2, backend: { ip: "fd00::20", port: 5353 } },
      { op: "putFrontend", frontend: v6, value: { id: 7, count: 3, affinityTimeout: 10800 } },
      { op: "deleteFrontend", frontend: web },
      { op: "deleteBackend", id: 3, slot: 1 },
    ];
    expect(ops.map(describeMapOp)).toEqual([
      "backend 7/2 -> [fd00::20]:5353",
      "frontend [fd00::10]:53/UDP -> group 7 (3 backends), ClientIP affinity 10800s",
      "frontend 172.30.0.10:80/TCP",
      "backend 3/1",
    ]);
    expect(formatEbpfDiff([], "/p/maps-v1")).toBe(
      "--- node (ebpf maps pinned in /p/maps-v1)\n+++ plan (ebpf)\n# ebpf: no differences\n",
    );
  });
});
