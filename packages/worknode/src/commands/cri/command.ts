/**
 * `worknode cri`: the crictl subset an operator reaches for — `ps`, `pods`,
 * `images`, `pull`, `exec`, `attach`, `port-forward`, `logs`, `inspect` — over
 * `@worknode/cri`, printing crictl's tables or JSON with `-o json`.
 *
 * `exec` streams like crictl (`-i` stdin, `-t` terminal, `-s` for ExecSync) and `attach`
 * connects to a container's main process: both write the container's bytes to the process's
 * own stdout / stderr. `port-forward` listens on 127.0.0.1 until interrupted.
 *
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import { ConfigError } from "@worknode/core";
import {
  ContainerState,
  ContainerStatusResponse,
  CriClient,
  ListContainersResponse,
  ListImagesResponse,
  ListPodSandboxResponse,
  type RemoteCommandTransportName,
} from "@worknode/cri";
import { type FlagSpec, parseFlags, renderHelp } from "../../flags.js";
import type { CliIO, Command } from "../../main.js";
import { formatContainers, formatImages, formatSandboxes, shortId } from "./format.js";
import { parseCriLog, tailLines } from "./logs.js";
import { parsePortSpec } from "./port-spec.js";
import { type CriStdio, processStdio } from "./stdio.js";
import { resolvePodSandbox, runPortForward, runSession } from "./streaming.js";

const ENDPOINT_FLAG = {
  kind: "string",
  help: "The CRI runtime's endpoint",
  default: "unix:///run/containerd/containerd.sock",
} as const satisfies FlagSpec;
const TRANSPORT_FLAG = {
  kind: "string",
  help: "Streaming transport: spdy (closes the command's stdin when ours ends) or websocket",
  default: "spdy",
} as const satisfies FlagSpec;
const OUTPUT_FLAG = {
  kind: "string",
  help: "Output format: table or json",
  default: "table",
} as const satisfies FlagSpec;

/** crictl's short flags, mapped to the long names parseFlags knows (`-t` differs between commands). */
const SHORT_FLAGS: Readonly<Record<string, string>> = {
  "-o": "--output",
  "-a": "--all",
  "-q": "--quiet",
  "-r": "--runtime-endpoint",
  "-f": "--follow",
};
/** `-i`, `-t`, `-s` and their clusters (`-it`, `-ti`, `-is` …) of exec and attach. */
const SESSION_SHORT_FLAGS: Readonly<Record<string, string>> = {
  i: "--interactive",
  t: "--tty",
  s: "--sync",
};

function sessionShortFlags(command: string, arg: string): string[] | undefined {
  if (command !== "exec" && command !== "attach") return undefined;
  if (!/^-[its]+$/.test(arg)) return undefined;
  const letters = [...arg.slice(1)];
  if (command === "attach" && letters.includes("s")) return undefined;
  return letters.map((l) => SESSION_SHORT_FLAGS[l]!);
}

function expandShortFlags(command: string, argv: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of argv) {
    const session = sessionShortFlags(command, a);
    if (session) out.push(...session);
    else if (command === "logs" && a === "-t") out.push("--timestamps");
    else out.push(SHORT_FLAGS[a] ?? a);
  }
  return out;
}

interface Subcommand {
  readonly summary: string;
  readonly usage: string;
  readonly flags: Record<string, FlagSpec>;
  run(
    flags: Record<string, string | boolean | number | undefined>,
    args: string[],
    client: CriClient,
    io: CliIO,
    stdio: CriStdio,
  ): Promise<number>;
}

function outputFormat(flags: Record<string, unknown>): "table" | "json" {
  const o = flags.output;
  if (o !== "table" && o !== "json")
    throw new ConfigError(`--output: "${String(o)}" is not one of table, json`);
  return o;
}

function transport(flags: Record<string, unknown>): RemoteCommandTransportName {
  const t = flags.transport;
  if (t !== "spdy" && t !== "websocket")
    throw new ConfigError(`--transport: "${String(t)}" is not one of spdy, websocket`);
  return t;
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Resolves a container by full id or unique id prefix, as crictl does. */
async function resolveContainer(client: CriClient, idOrPrefix: string): Promise<string> {
  const { containers } = await client.runtime.listContainers({});
  const matches = containers.filter((c) => c.id.startsWith(idOrPrefix));
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length === 0) throw new ConfigError(`no container with id (or id prefix) "${idOrPrefix}"`);
  throw new ConfigError(`container id prefix "${idOrPrefix}" is ambiguous (${matches.length} containers)`);
}

const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = {
  ps: {
    summary: "List containers",
    usage: "worknode cri ps [--all] [--pod ID] [--name REGEX] [-o table|json] [-q]",
    flags: {
      "runtime-endpoint": ENDPOINT_FLAG,
      output: OUTPUT_FLAG,
      all: { kind: "boolean", help: "Show all containers, not only running ones" },
      quiet: { kind: "boolean", help: "Only print container ids" },
      pod: { kind: "string", help: "Only containers of this pod sandbox id" },
      name: { kind: "string", help: "Only containers whose name matches this regular expression" },
    },
    async run(flags, _args, client, io) {
      const format = outputFormat(flags);
      const res = await client.runtime.listContainers({
        filter: {
          ...(flags.all ? {} : { state: { state: ContainerState.CONTAINER_RUNNING } }),
          ...(flags.pod ? { podSandboxId: String(flags.pod) } : {}),
        },
      });
      const name = flags.name ? new RegExp(String(flags.name)) : undefined;
      const containers = res.containers.filter((c) => !name || name.test(c.metadata?.name ?? ""));
      if (flags.quiet) io.stdout(containers.map((c) => `${c.id}\n`).join(""));
      else if (format === "json") io.stdout(json(ListContainersResponse.toJSON({ containers })));
      else {
        const { items } = await client.runtime.listPodSandbox({});
        io.stdout(formatContainers(containers, items, Date.now()));
      }
      return 0;
    },
  },
  pods: {
    summary: "List pod sandboxes",
    usage: "worknode cri pods [--name NAME] [--namespace NS] [-o table|json] [-q]",
    flags: {
      "runtime-endpoint": ENDPOINT_FLAG,
      output: OUTPUT_FLAG,
      quiet: { kind: "boolean", help: "Only print pod sandbox ids" },
      name: { kind: "string", help: "Only pods with this name" },
      namespace: { kind: "string", help: "Only pods in this namespace" },
    },
    async run(flags, _args, client, io) {
      const format = outputFormat(flags);
      const res = await client.runtime.listPodSandbox({});
      const items = res.items.filter(
        (s) =>
          (!flags.name || s.metadata?.name === flags.name) &&
          (!flags.namespace || s.metadata?.namespace === flags.namespace),
      );
      if (flags.quiet) io.stdout(items.map((s) => `${s.id}\n`).join(""));
      else if (format === "json") io.stdout(json(ListPodSandboxResponse.toJSON({ items })));
      else io.stdout(formatSandboxes(items, Date.now()));
      return 0;
    },
  },
  images: {
    summary: "List images",
    usage: "worknode cri images [-o table|json] [-q]",
    flags: {
      "runtime-endpoint": ENDPOINT_FLAG,
      output: OUTPUT_FLAG,
      quiet: { kind: "boolean", help: "Only print image ids" },
    },
    async run(flags, _args, client, io) {
      const format = outputFormat(flags);
      const res = await client.image.listImages({});
      if (flags.quiet) io.stdout(res.images.map((i) => `${i.id}\n`).join(""));
      else if (format === "json") io.stdout(json(ListImagesResponse.toJSON(res)));
      else io.stdout(formatImages(res.images));
      return 0;
    },
  },
  pull: {
    summary: "Pull an image",
    usage: "worknode cri pull [--creds USER:PASSWORD] IMAGE",
    flags: {
      "runtime-endpoint": ENDPOINT_FLAG,
      creds: { kind: "string", help: "Registry credentials as USER:PASSWORD" },
    },
    async run(flags, args, client, io) {
      const [image, extra] = args;
      if (!image || extra !== undefined) throw new ConfigError("pull takes exactly one image reference");
      let auth: { username: string; password: string } | undefined;
      if (flags.creds) {
        const creds = String(flags.creds);
        const colon = creds.indexOf(":");
        if (colon <= 0) throw new ConfigError("--creds must be USER:PASSWORD");
        auth = { username: creds.slice(0, colon), password: creds.slice(colon + 1) };
      }
      const res = await client.image.pullImage({ image: { image }, ...(auth ? { auth } : {}) });
      io.stdout(`Image is up to date for ${res.imageRef}\n`);
      return 0;
    },
  },
  exec: {
    summary: "Run a command in a running container",
    usage:
      "worknode cri exec [-i] [-t] [--transport spdy|websocket] [-s [--timeout SECONDS]] CONTAINER [--] COMMAND [ARG...]",
    flags: {
      "runtime-endpoint": ENDPOINT_FLAG,
      interactive: { kind: "boolean", help: "Keep stdin open and pass it to the command (-i)" },
      tty: { kind: "boolean", help: "Allocate a pseudo-TTY; needs -i and a terminal (-t)" },
      sync: { kind: "boolean", help: "Run the command synchronously with ExecSync (-s)" },
      transport: TRANSPORT_FLAG,
      timeout: {
        kind: "int",
        help: "With --sync: seconds before the command is killed (0: no limit)",
        default: "0",
      },
    },
    async run(flags, args, client, io, stdio) {
      const [container, ...rest] = args;
      // `exec CONTAINER -- CMD`: the separator after the container is not part of the command.
      const cmd = rest[0] === "--" ? rest.slice(1) : rest;
      if (!container || cmd.length === 0) throw new ConfigError("exec needs a container id and a command");
      const containerId = await resolveContainer(client, container);
      if (flags.sync) {
        if (flags.interactive || flags.tty) throw new ConfigError("--sync cannot be combined with -i or -t");
        const res = await client.runtime.execSync({ containerId, cmd, timeout: Number(flags.timeout ?? 0) });
        if (res.stdout.length) io.stdout(Buffer.from(res.stdout).toString());
        if (res.stderr.length) io.stderr(Buffer.from(res.stderr).toString());
        return res.exitCode;
      }
      const streaming = client.streaming;
      const tty = flags.tty === true;
      return runSession(
        (streams) => streaming.startExec({ containerId, cmd, tty, transport: transport(flags), ...streams }),
        { interactive: flags.interactive === true, tty },
        stdio,
        io,
      );
    },
  },
  attach: {
    summary: "Attach to a running container's main process",
    usage: "worknode cri attach [-i] [-t] [--transport spdy|websocket] CONTAINER",
    flags: {
      "runtime-endpoint": ENDPOINT_FLAG,
      interactive: { kind: "boolean", help: "Pass stdin to the container (-i)" },
      tty: { kind: "boolean", help: "Stdin is a TTY: the container must have been created with one (-t)" },
      transport: TRANSPORT_FLAG,
    },
    async run(flags, args, client, io, stdio) {
      const [container, extra] = args;
      if (!container || extra !== undefined) throw new ConfigError("attach takes exactly one container id");
      const containerId = await resolveContainer(client, container);
      const streaming = client.streaming;
      const tty = flags.tty === true;
      return runSession(
        (streams) => streaming.startAttach({ containerId, tty, transport: transport(flags), ...streams }),
        { interactive: flags.interactive === true, tty },
        stdio,
        io,
      );
    },
  },
  "port-forward": {
    summary: "Forward local ports to ports in a pod",
    usage: "worknode cri port-forward POD-SANDBOX [LOCAL_PORT:]REMOTE_PORT [...]",
    flags: { "runtime-endpoint": ENDPOINT_FLAG },
    async run(_flags, args, client, io) {
      const [pod, ...ports] = args;
      if (!pod || ports.length === 0)
        throw new ConfigError("port-forward needs a pod sandbox id and at least one [LOCAL:]REMOTE port");
      const specs = ports.map(parsePortSpec);
      const podSandboxId = await resolvePodSandbox(client, pod);
      return runPortForward(client.streaming, podSandboxId, specs, io);
    },
  },
  logs: {
    summary: "Print a container's log",
    usage: "worknode cri logs [--tail N] [--timestamps] [--follow] CONTAINER",
    flags: {
      "runtime-endpoint": ENDPOINT_FLAG,
      tail: { kind: "string", help: "Lines from the end to show (-1: all)", default: "-1" },
      timestamps: { kind: "boolean", help: "Show the time of each line" },
      follow: { kind: "boolean", help: "Keep printing new lines until interrupted" },
    },
    async run(flags, args, client, io) {
      const [container, extra] = args;
      if (!container || extra !== undefined) throw new ConfigError("logs takes exactly one container id");
      const tail = Number(flags.tail);
      if (!Number.isInteger(tail))
        throw new ConfigError(`--tail: "${String(flags.tail)}" is not a whole number`);
      const containerId = await resolveContainer(client, container);
      const { status } = await client.runtime.containerStatus({ containerId });
      const logPath = status?.logPath;
      if (!logPath) throw new ConfigError(`container ${shortId(containerId)} has no log path`);
      const print = (text: string) => {
        for (const l of parseCriLog(text)) {
          const line = `${flags.timestamps ? `${l.time} ` : ""}${l.content}\n`;
          if (l.stream === "stderr") io.stderr(line);
          else io.stdout(line);
        }
      };
      const text = await readFile(logPath, "utf8").catch((err: NodeJS.ErrnoException) => {
        throw new ConfigError(`cannot read ${logPath}: ${err.code ?? err.message}`);
      });
      const complete = text.slice(0, text.lastIndexOf("\n") + 1);
      print(
        tailLines(parseCriLog(complete), tail)
          .map((l) => `${l.time} ${l.stream} F ${l.content}`)
          .join("\n"),
      );
      if (!flags.follow) return 0;
      let offset = Buffer.byteLength(complete);
      while (!io.signal.aborted) {
        await new Promise((r) => setTimeout(r, 200));
        const size = (await stat(logPath).catch(() => undefined))?.size ?? 0;
        if (size < offset) offset = 0; // rotated
        if (size === offset) continue;
        const chunk = (await readFile(logPath)).subarray(offset).toString("utf8");
        const done = chunk.slice(0, chunk.lastIndexOf("\n") + 1);
        offset += Buffer.byteLength(done);
        print(done);
      }
      return 0;
    },
  },
  inspect: {
    summary: "Print a container's status as JSON",
    usage: "worknode cri inspect CONTAINER [CONTAINER...]",
    flags: { "runtime-endpoint": ENDPOINT_FLAG },
    async run(_flags, args, client, io) {
      if (args.length === 0) throw new ConfigError("inspect needs at least one container id");
      for (const arg of args) {
        const res = await client.runtime.containerStatus({
          containerId: await resolveContainer(client, arg),
          verbose: true,
        });
        const out = ContainerStatusResponse.toJSON(res) as {
          status?: unknown;
          info?: Record<string, string>;
        };
        const info: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(res.info)) {
          try {
            info[k] = JSON.parse(v);
          } catch {
            info[k] = v;
          }
        }
        io.stdout(json({ status: out.status, info }));
      }
      return 0;
    },
  },
};

/** Splits `argv` at the first positional for `exec`, so the command's own flags are not parsed as ours. */
function splitExecArgs(argv: readonly string[], flags: Record<string, FlagSpec>): [string[], string[]] {
  const ours: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return [ours, argv.slice(i + 1) as string[]];
    if (!a.startsWith("-")) return [ours, argv.slice(i) as string[]];
    ours.push(a);
    const name = (SHORT_FLAGS[a] ?? a).replace(/^--/, "").split("=")[0]!;
    if (!a.includes("=") && flags[name] && flags[name].kind !== "boolean" && i + 1 < argv.length)
      ours.push(argv[++i]!);
  }
  return [ours, []];
}

function usage(): string {
  const names = Object.keys(SUBCOMMANDS);
  const width = Math.max(...names.map((n) => n.length)) + 4;
  return [
    "Inspect and operate the container runtime over CRI (a crictl subset)",
    "",
    "Usage: worknode cri <command> [flags]",
    "",
    "Commands:",
    ...names.map((n) => `  ${n.padEnd(width)}${SUBCOMMANDS[n]!.summary}`),
    "",
    'Run "worknode cri <command> --help" for its flags.',
    "",
  ].join("\n");
}

/** The `cri` command. */
export const criCommand: Command = {
  name: "cri",
  summary:
    "Talk to the container runtime over CRI: ps, pods, images, pull, exec, attach, port-forward, logs, inspect",
  async run(argv, io) {
    const [name, ...rest] = argv;
    if (name === undefined || name === "--help" || name === "help") {
      io.stdout(usage());
      return name === undefined ? 2 : 0;
    }
    const sub = SUBCOMMANDS[name];
    if (!sub) throw new ConfigError(`unknown cri command "${name}" (run "worknode cri --help")`);
    const expanded = expandShortFlags(name, rest);
    const [flagArgs, tail] =
      name === "exec" ? splitExecArgs(expanded, sub.flags) : [expanded, [] as string[]];
    const { flags, positionals, help } = parseFlags(`worknode cri ${name}`, sub.flags, flagArgs);
    if (help) {
      io.stdout(renderHelp(sub.usage, sub.summary, sub.flags));
      return 0;
    }
    const client = new CriClient({ endpoint: String(flags["runtime-endpoint"]) });
    try {
      await client.connect();
      return await sub.run(flags, [...positionals, ...tail], client, io, processStdio());
    } finally {
      client.close();
    }
  },
};
