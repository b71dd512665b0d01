import { ConfigError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { DetachKeyFilter } from "../src/commands/cri/detach-keys.js";
import { parsePortSpec } from "../src/commands/cri/port-spec.js";
import { checkTtyFlags } from "../src/commands/cri/streaming.js";
import { runCli } from "../src/main.js";

describe("port-forward's [LOCAL:]REMOTE", () => {
  it("reads the forms kubectl and crictl accept", () => {
    expect(parsePortSpec("8080:80")).toEqual({ localPort: 8080, remotePort: 80 });
    expect(parsePortSpec("80")).toEqual({ localPort: 80, remotePort: 80 });
    expect(parsePortSpec(":80")).toEqual({ localPort: 0, remotePort: 80 });
    expect(parsePortSpec("0:65535")).toEqual({ localPort: 0, remotePort: 65535 });
  });

  it("rejects anything else with a ConfigError", () => {
    for (const bad of ["", "0", "http", "80:", "1:2:3", "70000", "8080:0", "-1:80", "80:8o"])
      expect(() => parsePortSpec(bad), bad).toThrow(ConfigError);
  });
});

describe("crictl's -t rules", () => {
  it("needs -i and a terminal on stdin", () => {
    expect(() => checkTtyFlags({ interactive: false, tty: true }, true)).toThrow(/interactive=true/);
    expect(() => checkTtyFlags({ interactive: true, tty: true }, false)).toThrow(/not a terminal/);
    expect(() => checkTtyFlags({ interactive: true, tty: true }, true)).not.toThrow();
    expect(() => checkTtyFlags({ interactive: true, tty: false }, false)).not.toThrow();
    expect(() => checkTtyFlags({ interactive: false, tty: false }, false)).not.toThrow();
  });
});

async function cli(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(["cri", ...argv], {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    signal: new AbortController().signal,
  });
  return { status, stdout, stderr };
}

describe("worknode cri streaming commands' usage", () => {
  it("lists attach and port-forward", async () => {
    const r = await cli("--help");
    expect(r.stdout).toMatch(/^ {2}attach\s+Attach to a running container's main process$/m);
    expect(r.stdout).toMatch(/^ {2}port-forward\s+Forward local ports to ports in a pod$/m);
  });

  it("documents exec's -i, -t and -s", async () => {
    const r = await cli("exec", "--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      "worknode cri exec [-i] [-t] [--transport spdy|websocket] [-s [--timeout SECONDS]] CONTAINER [--] COMMAND",
    );
    expect(r.stdout).toMatch(/--interactive/);
    expect(r.stdout).toMatch(/--sync/);
  });

  it("rejects attach -s, which crictl does not have", async () => {
    const r = await cli("attach", "-s", "abc");
    expect(r.status).toBe(2);
  });
});

describe("detach keys (ctrl-p, ctrl-q)", () => {
  it("pass ordinary bytes through and detach on the full sequence", () => {
    const f = new DetachKeyFilter();
    expect(f.push(Buffer.from("ls\r"))).toEqual({ data: Buffer.from("ls\r"), detached: false });
    expect(f.push(Buffer.from([0x61, 0x10, 0x11, 0x62]))).toEqual({ data: Buffer.from("a"), detached: true });
  });

  it("hold a partial sequence across chunks and release it when broken", () => {
    const f = new DetachKeyFilter();
    expect(f.push(Buffer.from([0x10]))).toEqual({ data: Buffer.alloc(0), detached: false });
    expect(f.push(Buffer.from("x"))).toEqual({ data: Buffer.from([0x10, 0x78]), detached: false });
    expect(f.push(Buffer.from([0x10]))).toEqual({ data: Buffer.alloc(0), detached: false });
    expect(f.push(Buffer.from([0x11]))).toEqual({ data: Buffer.alloc(0), detached: true });
  });

  it("restart the match on a repeated first key", () => {
    const f = new DetachKeyFilter();
    expect(f.push(Buffer.from([0x10, 0x10, 0x11]))).toEqual({ data: Buffer.from([0x10]), detached: true });
  });
});
