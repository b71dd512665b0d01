import { WorknodeError } from "@worknode/core";
import type { CriRuntimeService } from "@worknode/cri";
import { describe, expect, it } from "vitest";
import { type ProbeExecRuntime, runExecProbe } from "../../src/probes/exec-probe.js";
import { ProbeError } from "../../src/probes/probe-target.js";

interface Call {
  request: { containerId: string; cmd: string[]; timeout: bigint };
  options: { timeoutMs?: number } | undefined;
}

/** A fake CRI ExecSync: answers from `answer`, recording each call. */
function fakeRuntime(answer: (cmd: string[]) => Promise<{ exitCode: number; out?: string }>) {
  const calls: Call[] = [];
  const runtime: ProbeExecRuntime = {
    async execSync(request, options) {
      calls.push({ request, options });
      const r = await answer(request.cmd);
      return { exitCode: r.exitCode, stdout: Buffer.from(r.out ?? ""), stderr: new Uint8Array() };
    },
  };
  return { runtime, calls };
}

describe("exec probe through CRI ExecSync", () => {
  it("passes container, command and timeout (whole seconds) and succeeds on exit 0", async () => {
    const { runtime, calls } = fakeRuntime(async () => ({ exitCode: 0, out: "fine\n" }));
    const out = await runExecProbe(runtime, "c1", ["cat", "/tmp/healthy"], 2500, 120_000);
    expect(out).toEqual({ result: "success", output: "fine\n" });
    expect(calls).toEqual([
      {
        request: { containerId: "c1", cmd: ["cat", "/tmp/healthy"], timeout: 2n },
        options: { timeoutMs: 122_500 },
      },
    ]);
  });

  it("fails on a non-zero exit status", async () => {
    const { runtime } = fakeRuntime(async () => ({ exitCode: 1, out: "missing" }));
    const out = await runExecProbe(runtime, "c1", ["false"], 1000);
    expect(out.result).toBe("failure");
    expect(out.output).toContain("exited with 1");
  });

  it("fails (does not error) when the runtime reports DEADLINE_EXCEEDED", async () => {
    const { runtime } = fakeRuntime(async () => {
      throw new WorknodeError("CRI_DEADLINE_EXCEEDED", "CRI ExecSync failed: DEADLINE_EXCEEDED");
    });
    const out = await runExecProbe(runtime, "c1", ["sleep", "10"], 1000);
    expect(out.result).toBe("failure");
    expect(out.output).toContain("timed out");
  });

  it("errors with ProbeError on other runtime failures", async () => {
    const { runtime } = fakeRuntime(async () => {
      throw new WorknodeError("CRI_NOT_FOUND", "container c1 not found");
    });
    await expect(runExecProbe(runtime, "c1", ["true"], 1000)).rejects.toBeInstanceOf(ProbeError);
  });

  it("errors without calling the runtime when the command is empty", async () => {
    const { runtime, calls } = fakeRuntime(async () => ({ exitCode: 0 }));
    await expect(runExecProbe(runtime, "c1", [], 1000)).rejects.toBeInstanceOf(ProbeError);
    expect(calls).toHaveLength(0);
  });

  it("accepts CriClient.runtime as its runtime (type check)", () => {
    const asRuntime = (r: CriRuntimeService): ProbeExecRuntime => r;
    expect(typeof asRuntime).toBe("function");
  });
});
