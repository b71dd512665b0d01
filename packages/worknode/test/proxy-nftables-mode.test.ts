/**
 * `--proxy-mode nftables` without root: the KubeProxyConfiguration `nftables:` section
 * and kube-proxy's rules for which flags apply in that mode, mode selection in
 * `worknode proxy` and `worknode node` (recording backends), the nftables backend's
 * family detection and `--cleanup` of every mode through a recording command runner,
 * `plan` / `plan --diff` in nftables mode, and the pure nft table diff.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type CommandRunner, ConfigError, createLogger, createMetricsRegistry } from "@worknode/core";
import { NftablesProxier } from "@worknode/proxy-nftables";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeCommand } from "../src/commands/node.js";
import { createProxyCommand } from "../src/commands/proxy.js";
import {
  cleanupAllModes,
  createIptablesBackend,
  createNftablesBackend,
  createProxyBackend,
} from "../src/commands/proxy-backend.js";
import {
  checkProxyMode,
  parseKubeProxyConfiguration,
  resolveProxySettings,
} from "../src/commands/proxy-config.js";
import { diffNftTables, formatNftDiffs, parseNftTable } from "../src/commands/proxy-nft-diff.js";
import { createProxyPipeline } from "../src/commands/proxy-pipeline.js";
import { CliUsageError } from "../src/flags.js";
import { captureIO as capture, webServicesYaml } from "./helpers/proxy-setup.js";
import { recordingBackends, recordingRunner, runUntilFirstSync } from "./helpers/recording-backend.js";

const HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

const SERVICES_YAML = webServicesYaml();

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "worknode-nft-mode-"));
  await writeFile(file("services.yaml"), SERVICES_YAML);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("KubeProxyConfiguration: the nftables section", () => {
  it("reads nftables.masqueradeAll, masqueradeBit, minSyncPeriod and syncPeriod (no longer ignored)", () => {
    const file = parseKubeProxyConfiguration(
      `${HEADER}mode: nftables
nftables:
  masqueradeAll: true
  masqueradeBit: 9
  minSyncPeriod: 3s
  syncPeriod: 2m
`,
      "c.yaml",
    );
    expect(file.ignoredFields).toEqual([]);
    expect(file.settings).toEqual({
      mode: "nftables",
      nftables: { masqueradeAll: true, masqueradeBit: 9, minSyncPeriodMs: 3000, syncPeriodMs: 120_000 },
    });
    expect(resolveProxySettings({}, file.settings, "c.yaml")).toMatchObject({
      mode: "nftables",
      masqueradeAll: true,
      masqueradeBit: 9,
      minSyncPeriodMs: 3000,
      syncPeriodMs: 120_000,
      localhostNodePorts: false,
    });
  });

  it("takes the section of the mode in use and leaves the other one (kube-proxy's v1alpha1 conversion)", () => {
    const text = `${HEADER}iptables:
  masqueradeAll: true
  masqueradeBit: 15
  minSyncPeriod: 5s
  syncPeriod: 50s
nftables:
  masqueradeBit: 9
  syncPeriod: 2m
`;
    const file = parseKubeProxyConfiguration(text, "c.yaml").settings;
    expect(resolveProxySettings({}, file, "c.yaml")).toMatchObject({
      mode: "iptables",
      masqueradeAll: true,
      masqueradeBit: 15,
      minSyncPeriodMs: 5000,
      syncPeriodMs: 50_000,
    });
    // --proxy-mode nftables picks the nftables section; what it leaves unset takes kube-proxy's defaults.
    expect(resolveProxySettings({ mode: "nftables" }, file, "c.yaml")).toMatchObject({
      mode: "nftables",
      masqueradeAll: false,
      masqueradeBit: 9,
      minSyncPeriodMs: 1000,
      syncPeriodMs: 120_000,
    });
  });

  it("names the nftables field of an invalid value", () => {
    const bad = parseKubeProxyConfiguration(
      `${HEADER}mode: nftables\nnftables: {masqueradeBit: 40}\n`,
      "c.yaml",
    );
    expect(() => resolveProxySettings({}, bad.settings, "c.yaml")).toThrow(
      new ConfigError("--config c.yaml: nftables.masqueradeBit: 40 is not in 0-31"),
    );
    const sync = parseKubeProxyConfiguration(
      `${HEADER}mode: nftables\nnftables: {minSyncPeriod: 1m, syncPeriod: 30s}\n`,
      "c.yaml",
    );
    expect(() => resolveProxySettings({}, sync.settings, "c.yaml")).toThrow(
      "--config c.yaml: nftables.syncPeriod: must be at least the minimum sync period (60000 ms)",
    );
    expect(() =>
      parseKubeProxyConfiguration(`${HEADER}nftables: {masqueradeAll: yes please}\n`, "c.yaml"),
    ).toThrow(/nftables\.masqueradeAll: expected true or false/);
  });

  it("flags in nftables mode: sync periods and --masquerade-all apply (kube-proxy 1.31+), the iptables-only ones do not", () => {
    const file = parseKubeProxyConfiguration(
      `${HEADER}mode: nftables\nnftables: {masqueradeBit: 9, minSyncPeriod: 3s, syncPeriod: 2m}\n`,
      "c.yaml",
    ).settings;
    const r = resolveProxySettings(
      {
        minSyncPeriodMs: 0,
        syncPeriodMs: 10_000,
        masqueradeAll: true,
        masqueradeBit: 20,
        localhostNodePorts: true,
      },
      file,
      "c.yaml",
    );
    expect(r).toMatchObject({
      mode: "nftables",
      minSyncPeriodMs: 0,
      syncPeriodMs: 10_000,
      masqueradeAll: true,
      masqueradeBit: 9,
      localhostNodePorts: false,
      unusedFlags: ["--iptables-masquerade-bit", "--iptables-localhost-nodeports"],
    });
    // In iptables mode nothing is unused.
    expect(resolveProxySettings({ masqueradeBit: 20 }, undefined).unusedFlags).toBeUndefined();
  });
});

describe("proxy modes", () => {
  it("iptables, nftables and ebpf are implemented; userspace and ipvs are not yet; anything else is a usage error", () => {
    expect(checkProxyMode("iptables")).toBe("iptables");
    expect(checkProxyMode("nftables")).toBe("nftables");
    expect(checkProxyMode("ebpf")).toBe("ebpf");
    for (const m of ["userspace", "ipvs"]) {
      let err: unknown;
      try {
        checkProxyMode(m);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect(err).not.toBeInstanceOf(CliUsageError);
      expect((err as Error).message).toBe(
        `--proxy-mode: proxy mode "${m}" is not implemented yet (implemented: iptables, nftables, ebpf)`,
      );
    }
    expect(() => checkProxyMode("nft")).toThrow(CliUsageError);
    expect(() => checkProxyMode("nft")).toThrow(
      'unknown proxy mode "nft" (known: iptables, userspace, nftables, ipvs, ebpf)',
    );
  });

  it("worknode proxy: iptables by default, --proxy-mode nftables or the file's mode select the nftables backend", async () => {
    const byDefault = recordingBackends();
    const d = await runUntilFirstSync([], byDefault, file("services.yaml"));
    expect(d.status).toBe(0);
    expect(byDefault.state.modes).toEqual(["iptables"]);
    expect(d.proxier.mode).toBe("iptables");

    const byFlag = recordingBackends();
    const f = await runUntilFirstSync(
      ["--proxy-mode", "nftables", "--masquerade-all"],
      byFlag,
      file("services.yaml"),
    );
    expect(f.status).toBe(0);
    expect(byFlag.state.modes).toEqual(["nftables"]);
    expect(f.proxier.options).toMatchObject({
      nodeName: "node-1",
      families: ["IPv4"],
      masqueradeAll: true,
      masqueradeBit: 14,
      localhostNodePorts: false,
    });
    expect([...f.proxier.syncs.at(-1)!.snapshot.services.keys()].sort()).toEqual([
      "default/lonely:http/TCP",
      "default/web:http/TCP",
    ]);

    await writeFile(file("nft.yaml"), `${HEADER}mode: nftables\nnftables: {masqueradeBit: 9}\n`);
    const byFile = recordingBackends();
    const c = await runUntilFirstSync(
      ["--config", file("nft.yaml"), "--iptables-masquerade-bit", "3"],
      byFile,
      file("services.yaml"),
    );
    expect(c.status).toBe(0);
    expect(byFile.state.modes).toEqual(["nftables"]);
    expect(c.proxier.options.masqueradeBit).toBe(9);
    expect(c.stderr).toContain("these flags do not apply to this proxy mode");
    expect(c.stderr).toContain("--iptables-masquerade-bit");
  });

  it("worknode proxy: unimplemented modes fail with one line before any backend is made", async () => {
    for (const mode of ["ipvs", "userspace"]) {
      const b = recordingBackends();
      const cmd = createProxyCommand({ backendFor: b.backendFor });
      await expect(
        cmd.run(["--services-file", file("services.yaml"), "--proxy-mode", mode], capture().io),
      ).rejects.toThrow(
        new RegExp(`proxy mode "${mode}" is not implemented yet \\(implemented: iptables, nftables, ebpf\\)`),
      );
      expect(b.state.modes).toEqual([]);
    }
  });

  it("worknode proxy --cleanup asks the selected backend, whose cleanup covers every mode", async () => {
    const b = recordingBackends();
    const cmd = createProxyCommand({ backendFor: b.backendFor });
    expect(
      await cmd.run(["--cleanup", "--proxy-mode", "nftables", "--log-level", "error"], capture().io),
    ).toBe(0);
    expect(b.state).toMatchObject({ modes: ["nftables"], cleanups: 1 });
  });

  it("worknode node: --proxy-mode nftables selects the nftables backend; ipvs is not implemented", async () => {
    const b = recordingBackends(["IPv4", "IPv6"]);
    const { io, out } = capture();
    const status = await createNodeCommand({ proxyBackendFor: b.backendFor }).run(
      ["--proxy-mode", "nftables", "--cleanup"],
      io,
    );
    expect(status).toBe(0);
    expect(b.state).toMatchObject({ modes: ["nftables"], cleanups: 1 });
    expect(out.stdout).toBe("removed the proxy rules (IPv4, IPv6)\n");
    await createNodeCommand({ proxyBackendFor: b.backendFor }).run(["--cleanup"], capture().io);
    expect(b.state.modes).toEqual(["nftables", "iptables"]);
    await expect(
      createNodeCommand({ proxyBackendFor: b.backendFor }).run(
        ["--proxy-mode", "ipvs", "--cleanup"],
        capture().io,
      ),
    ).rejects.toThrow(/proxy mode "ipvs" is not implemented yet \(implemented: iptables, nftables, ebpf\)/);
    expect(b.state.modes).toEqual(["nftables", "iptables"]);
  });

  it("the pipeline names the mode when none of its families works", async () => {
    const logger = createLogger({ name: "t", level: "silent" });
    const settings = {
      clusterCIDRs: [],
      masqueradeAll: false,
      nodePortAddresses: [],
      masqueradeBit: 14,
      localhostNodePorts: false,
      minSyncPeriodMs: 1000,
      syncPeriodMs: 30_000,
    };
    const { runner } = recordingRunner(() => ({ code: 1, stderr: "Error: Could not process rule" }));
    await expect(
      createProxyPipeline({
        backend: createNftablesBackend(runner),
        settings,
        nodeName: "n",
        nodeIPs: [],
        registry: createMetricsRegistry(),
        logger,
      }),
    ).rejects.toThrow(/no usable nftables: `nft list tables ip` and `nft list tables ip6` both failed/);
  });
});

describe("the nftables backend through a command runner", () => {
  it("a family is usable when `nft list tables <ip|ip6>` works; the proxier is the NftablesProxier", async () => {
    const { runner, calls } = recordingRunner((cmd, args) =>
      cmd === "nft" && args.at(-1) === "ip6" ? { code: 1, stderr: "Error: Protocol not supported" } : {},
    );
    const backend = createNftablesBackend(runner);
    expect(backend.mode).toBe("nftables");
    expect(await backend.detectFamilies()).toEqual(["IPv4"]);
    expect(calls.map((c) => [c.command, ...c.args].join(" "))).toEqual([
      "nft list tables ip",
      "nft list tables ip6",
    ]);
    const proxier = backend.createProxier({
      nodeName: "n",
      nodeIPs: ["192.168.1.10"],
      families: ["IPv4"],
      clusterCIDRs: ["10.244.0.0/16"],
      masqueradeAll: false,
      nodePortAddresses: [],
      masqueradeBit: 12,
      localhostNodePorts: true,
      logger: createLogger({ name: "t", level: "silent" }),
    });
    expect(proxier).toBeInstanceOf(NftablesProxier);
    expect(proxier.mode).toBe("nftables");
    expect((proxier as NftablesProxier).renderOptions("IPv4")).toMatchObject({
      masqueradeBit: 12,
      clusterCIDR: "10.244.0.0/16",
    });
    expect(createProxyBackend("iptables", runner).mode).toBe("iptables");
  });

  it("cleanup removes the iptables rules and both nftables tables, whichever mode is selected", async () => {
    for (const mode of ["iptables", "nftables"] as const) {
      const { runner, calls } = recordingRunner();
      const families = await createProxyBackend(mode, runner).cleanup(
        createLogger({ name: "t", level: "silent" }),
      );
      expect(families).toEqual(["IPv4", "IPv6"]);
      const commands = calls.map((c) => c.command);
      expect(commands).toContain("iptables");
      expect(commands).toContain("ip6tables");
      const nftInputs = calls
        .filter((c) => c.command === "nft" && c.args.join(" ") === "-f -")
        .map((c) => c.stdin);
      expect(nftInputs).toEqual([
        "add table ip kube-proxy\ndelete table ip kube-proxy\n",
        "add table ip6 kube-proxy\ndelete table ip6 kube-proxy\n",
      ]);
    }
  });

  it("at start, each mode removes the other mode's leftovers and nothing of its own", async () => {
    const logger = createLogger({ name: "t", level: "silent" });
    const nft = recordingRunner((cmd, args) =>
      cmd === "iptables-save" && args.includes("nat") ? { stdout: ":KUBE-SERVICES - [0:0]\n" } : {},
    );
    await createNftablesBackend(nft.runner).cleanupOtherModes!(logger);
    // iptables leftovers go (a restore deleting KUBE-SERVICES), no nft table is touched.
    expect(
      nft.calls.some((c) => c.command === "iptables-restore" && (c.stdin ?? "").includes("-X KUBE-SERVICES")),
    ).toBe(true);
    expect(nft.calls.filter((c) => c.command === "nft" && c.args[0] === "-f")).toEqual([]);

    const ipt = recordingRunner();
    await createIptablesBackend(ipt.runner).cleanupOtherModes!(logger);
    expect(ipt.calls.filter((c) => c.command === "nft" && c.args[0] === "-f").map((c) => c.stdin)).toEqual([
      "add table ip kube-proxy\ndelete table ip kube-proxy\n",
      "add table ip6 kube-proxy\ndelete table ip6 kube-proxy\n",
    ]);
    expect(ipt.calls.some((c) => c.command.startsWith("ip") && c.command.includes("tables"))).toBe(false);

    const failing = recordingRunner((cmd, args) =>
      cmd === "nft" && args[0] === "-f" ? { code: 1, stderr: "Error: busy" } : {},
    );
    await expect(createIptablesBackend(failing.runner).cleanupOtherModes!(logger)).rejects.toThrow(
      /nftables IPv4: Error: busy/,
    );
  });

  it("cleanup skips what this host cannot program and fails naming what could not be removed", async () => {
    const logger = createLogger({ name: "t", level: "silent" });
    // No ip6 in nftables, no iptables at all: only the ip table is deleted.
    const partial = recordingRunner((cmd, args) =>
      cmd.startsWith("ip") || (cmd === "nft" && args.at(-1) === "ip6") ? { code: 1 } : {},
    );
    expect(await cleanupAllModes(partial.runner, logger)).toEqual(["IPv4"]);
    expect(
      partial.calls.filter((c) => c.command === "nft" && c.args[0] === "-f").map((c) => c.stdin),
    ).toEqual(["add table ip kube-proxy\ndelete table ip kube-proxy\n"]);
    // Nothing usable: nothing to do, no error.
    const none = recordingRunner(() => ({ code: 1 }));
    expect(await cleanupAllModes(none.runner, logger)).toEqual([]);
    // The delete fails: an error naming nftables.
    const failing = recordingRunner((cmd, args) =>
      cmd === "nft" && args[0] === "-f" ? { code: 1, stderr: "Error: Operation not permitted" } : {},
    );
    await expect(cleanupAllModes(failing.runner, logger)).rejects.toThrow(
      /cleanup incomplete: nftables IPv4: .*Operation not permitted/,
    );
  });
});

describe("worknode proxy plan --proxy-mode nftables", () => {
  async function plan(argv: string[], runner: CommandRunner) {
    const { io, out } = capture();
    const status = await createProxyCommand({
      planRunner: runner,
      nodeIPs: () => ["192.168.1.10"],
      hostname: () => "node-1",
    }).run(["plan", "--services-file", file("services.yaml"), "--proxy-mode", "nftables", ...argv], io);
    return { status, ...out };
  }

  it("prints the nft transaction of a full sync, and touches nothing", async () => {
    const { runner, calls } = recordingRunner();
    const r = await plan(["--cluster-cidr", "10.244.0.0/16"], runner);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(calls).toEqual([]);
    expect(r.stdout).toMatch(
      /^# worknode proxy plan: mode nftables, node node-1, IPv4: table ip kube-proxy, 2 service ports, 1 endpoints/,
    );
    expect(r.stdout).toContain("# input of: nft -f -");
    expect(r.stdout).toContain('add table ip kube-proxy { comment "rules for kube-proxy" ; }');
    expect(r.stdout).toMatch(
      /^add element ip kube-proxy service-ips \{ 172\.30\.0\.10 \. tcp \. 80 : goto service-\S+-default\/web\/tcp\/http \}$/m,
    );
    expect(r.stdout).toMatch(/dnat to 10\.244\.0\.11:8080$/m);
    // The endpoint-less service is rejected through the no-endpoint-services map.
    expect(r.stdout).toMatch(
      /^add element ip kube-proxy no-endpoint-services \{ 172\.30\.0\.12 \. tcp \. 80 : goto reject-chain \}$/m,
    );
    // The payload is exactly what the proxier renders.
    const payload = r.stdout
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n")
      .trimStart();
    expect(payload).toContain("add chain ip kube-proxy nat-prerouting");
  });

  it("--iptables-localhost-nodeports is reported as not applying", async () => {
    const r = await plan(["--iptables-localhost-nodeports=false"], recordingRunner().runner);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(
      "worknode proxy plan: warning: --iptables-localhost-nodeports do not apply to proxy mode nftables; ignored\n",
    );
  });

  it("--diff compares `nft -s list table ip kube-proxy` with the plan applied in a scratch namespace", async () => {
    const node = `table ip kube-proxy {
	comment "rules for kube-proxy"
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 172.30.0.10 . tcp . 80 : goto service-AAAA-default/web/tcp/http,
			     172.30.0.99 . tcp . 80 : goto service-BBBB-default/old/tcp/http }
	}
	chain service-AAAA-default/web/tcp/http {
		meta l4proto tcp dnat to 10.244.0.11:8080
	}
	chain service-BBBB-default/old/tcp/http {
		meta l4proto tcp dnat to 10.244.0.50:8080
	}
}
`;
    const scratch = `table ip kube-proxy {
	comment "rules for kube-proxy"
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 172.30.0.10 . tcp . 80 : goto service-AAAA-default/web/tcp/http }
	}
	chain service-AAAA-default/web/tcp/http {
		meta l4proto tcp dnat to 10.244.0.12:8080
	}
}
`;
    const { runner, calls } = recordingRunner((cmd) => ({ stdout: cmd === "nft" ? node : scratch }));
    const r = await plan(["--diff"], runner);
    expect(r.status).toBe(0);
    expect(calls[0]).toMatchObject({ command: "nft", args: ["-s", "list", "table", "ip", "kube-proxy"] });
    expect(calls[1]!.command).toBe("unshare");
    expect(calls[1]!.args.slice(0, 3)).toEqual(["--net", "--", "sh"]);
    expect(calls[1]!.stdin).toContain("add table ip kube-proxy");
    expect(r.stdout).toBe(`--- node (IPv4, nft list table ip kube-proxy)
+++ plan (IPv4)
@@ ip kube-proxy map service-ips @@
-element 172.30.0.99 . tcp . 80 : goto service-BBBB-default/old/tcp/http
@@ ip kube-proxy chain service-AAAA-default/web/tcp/http @@
-meta l4proto tcp dnat to 10.244.0.11:8080
+meta l4proto tcp dnat to 10.244.0.12:8080
@@ ip kube-proxy chain service-BBBB-default/old/tcp/http (deleted) @@
-meta l4proto tcp dnat to 10.244.0.50:8080
# IPv4: 3 objects differ: 1 line to add, 3 to remove
`);
  });

  it("--diff treats a missing table as empty and fails with one line when nft cannot read", async () => {
    const absent = recordingRunner((cmd) =>
      cmd === "nft"
        ? { code: 1, stderr: "Error: No such file or directory; did you mean table 'nat' in family ip?" }
        : { stdout: 'table ip kube-proxy {\n\tcomment "rules for kube-proxy"\n\tchain services {\n\t}\n}\n' },
    );
    const r = await plan(["--diff"], absent.runner);
    expect(r.stdout).toContain("@@ ip kube-proxy chain services (new) @@");
    expect(r.stdout).toContain('+comment "rules for kube-proxy"');
    const denied = recordingRunner(() => ({ code: 1, stderr: "Error: Operation not permitted" }));
    await expect(plan(["--diff"], denied.runner)).rejects.toThrow(
      /nft list table ip kube-proxy failed: Error: Operation not permitted \(reading the node's rules needs root\)/,
    );
  });
});

describe("nft table diff (pure)", () => {
  const NODE = `table ip kube-proxy { # handle 7
	comment "rules for kube-proxy"
	set affinity-X {
		type ipv4_addr
		flags dynamic,timeout
		timeout 3h
		elements = { 10.0.0.1 timeout 3h expires 2h59m58s }
	}
	set cluster-ips {
		type ipv4_addr
		elements = { 172.30.0.12, 172.30.0.10,
			     172.30.0.11 }
	}
	chain services {
		counter packets 12 bytes 720 jump x
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
}
`;

  it("reads objects, sorts elements, leaves out dynamic set elements, expiry timers and counter values", () => {
    const t = parseNftTable(NODE.replace(" # handle 7", ""));
    expect([...t.keys()]).toEqual(["table", "set affinity-X", "set cluster-ips", "chain services"]);
    expect(t.get("table")!.lines).toEqual(['comment "rules for kube-proxy"']);
    expect(t.get("set affinity-X")!.elements).toEqual([]);
    expect(t.get("set cluster-ips")!.elements).toEqual(["172.30.0.10", "172.30.0.11", "172.30.0.12"]);
    expect(t.get("chain services")!.lines).toEqual([
      "counter packets 0 bytes 0 jump x",
      "ip daddr . meta l4proto . th dport vmap @service-ips",
    ]);
    expect(parseNftTable("")).toEqual(new Map());
  });

  it("an unchanged table has no differences; order of elements does not matter, order of rules does", () => {
    const a = parseNftTable(NODE.replace(" # handle 7", ""));
    const reordered = parseNftTable(
      NODE.replace(" # handle 7", "").replace("172.30.0.12, 172.30.0.10,", "172.30.0.10, 172.30.0.12,"),
    );
    expect(diffNftTables(a, reordered, "ip kube-proxy")).toEqual([]);
    expect(formatNftDiffs([], "IPv4", "nft list table ip kube-proxy")).toBe(
      "--- node (IPv4, nft list table ip kube-proxy)\n+++ plan (IPv4)\n# IPv4: no differences\n",
    );
    const swapped = parseNftTable(
      NODE.replace(" # handle 7", "").replace(
        "\t\tcounter packets 12 bytes 720 jump x\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n",
        "\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t\tcounter packets 12 bytes 720 jump x\n",
      ),
    );
    expect(diffNftTables(a, swapped, "ip kube-proxy").map((d) => d.chain)).toEqual(["chain services"]);
  });

  it("new and deleted objects are marked", () => {
    const before = parseNftTable("table ip kube-proxy {\n\tchain old {\n\t\treject\n\t}\n}\n");
    const after = parseNftTable("table ip kube-proxy {\n\tchain new {\n\t\taccept\n\t}\n}\n");
    const d = diffNftTables(before, after, "ip kube-proxy");
    expect(formatNftDiffs(d, "IPv4", "nft list table ip kube-proxy")).toBe(
      `--- node (IPv4, nft list table ip kube-proxy)
+++ plan (IPv4)
@@ ip kube-proxy chain new (new) @@
+accept
@@ ip kube-proxy chain old (deleted) @@
-reject
# IPv4: 2 objects differ: 1 line to add, 1 to remove
`,
    );
  });
});
