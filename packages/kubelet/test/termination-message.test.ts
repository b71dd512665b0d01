import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  ContainerState,
  type CriClient,
  Container as CriContainer,
  ContainerStatus as CriContainerStatus,
} from "@worknode/cri";
import { afterAll, describe, expect, it } from "vitest";
import { containerAnnotations, containerLabels } from "../src/labels.js";
import type { Container } from "../src/pod-spec.js";
import {
  RuntimeInspector,
  readFileTail,
  readTerminationMessageFromLog,
} from "../src/runtime/runtime-state.js";
import {
  criLogContent,
  MAX_TERMINATION_MESSAGE_BYTES,
  MAX_TERMINATION_MESSAGE_LOG_BYTES,
  MAX_TERMINATION_MESSAGE_LOG_LINES,
  terminationMessageFromCriLog,
  terminationMessageFromLogsNeeded,
} from "../src/termination-message.js";
import { container, pod } from "./helpers.js";

const TS = "2024-05-01T10:00:00.123456789Z";
const out = (content: string, tag = "F") => `${TS} stdout ${tag} ${content}\n`;
const err = (content: string, tag = "F") => `${TS} stderr ${tag} ${content}\n`;

describe("terminationMessageFromLogsNeeded", () => {
  const failed = { policy: "FallbackToLogsOnError", exitCode: 3, reason: "Error", fileMessage: "" };

  it("falls back for a failed container with an empty message file", () => {
    expect(terminationMessageFromLogsNeeded(failed)).toBe(true);
  });

  it("does not fall back after exit 0", () => {
    expect(terminationMessageFromLogsNeeded({ ...failed, exitCode: 0, reason: "Completed" })).toBe(false);
  });

  it("does not fall back when the message file has something", () => {
    expect(terminationMessageFromLogsNeeded({ ...failed, fileMessage: "bye" })).toBe(false);
  });

  it("does not fall back under the File policy (explicit or default)", () => {
    expect(terminationMessageFromLogsNeeded({ ...failed, policy: "File" })).toBe(false);
    expect(terminationMessageFromLogsNeeded({ ...failed, policy: "" })).toBe(false);
  });

  it("does not fall back for a container that never ran or has no exit code", () => {
    expect(terminationMessageFromLogsNeeded({ ...failed, exitCode: 128, reason: "ContainerCannotRun" })).toBe(
      false,
    );
    expect(terminationMessageFromLogsNeeded({ ...failed, exitCode: undefined })).toBe(false);
  });

  it("falls back for negative and signal exit codes", () => {
    expect(terminationMessageFromLogsNeeded({ ...failed, exitCode: 137, reason: "OOMKilled" })).toBe(true);
    expect(terminationMessageFromLogsNeeded({ ...failed, exitCode: -1 })).toBe(true);
  });
});

describe("terminationMessageFromCriLog", () => {
  it("keeps the content of stdout and stderr lines in order, newline-terminated", () => {
    const log = out("one") + err("two") + out("three");
    expect(terminationMessageFromCriLog(log)).toBe("one\ntwo\nthree\n");
  });

  it("joins partial lines with the line after them", () => {
    const log = out("start") + out("hel", "P") + out("lo ", "P") + out("world") + out("end");
    expect(terminationMessageFromCriLog(log)).toBe("start\nhello world\nend\n");
  });

  it("keeps a final partial line without a newline and extra tags after ':'", () => {
    expect(terminationMessageFromCriLog(out("a") + out("DONE", "P"))).toBe("a\nDONE");
    expect(terminationMessageFromCriLog(out("x", "F:extra"))).toBe("x\n");
  });

  it("keeps empty lines and spaces inside the content", () => {
    expect(terminationMessageFromCriLog(out("") + out("  a b  "))).toBe("\n  a b  \n");
  });

  it("skips malformed lines", () => {
    const log = `${out("a")}garbage\n${TS} stdin F nope\n${TS} stdout\n${out("b")}`;
    expect(terminationMessageFromCriLog(log)).toBe("a\nb\n");
  });

  it("includes a last line still being written, without a newline", () => {
    expect(terminationMessageFromCriLog(`${out("a")}${TS} stdout F tail`)).toBe("a\ntail");
  });

  it("takes only the last 80 lines", () => {
    const log = Array.from({ length: 100 }, (_, i) => out(`l${i}`)).join("");
    const msg = terminationMessageFromCriLog(log);
    const lines = msg.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(MAX_TERMINATION_MESSAGE_LOG_LINES);
    expect(lines[0]).toBe("l20");
    expect(lines.at(-1)).toBe("l99");
  });

  it("counts partial lines as lines (kubelet's tailLines over the raw file)", () => {
    const log = out("a") + out("b", "P") + out("c");
    expect(terminationMessageFromCriLog(log, { maxLines: 2 })).toBe("bc\n");
    expect(terminationMessageFromCriLog(log, { maxLines: 1 })).toBe("c\n");
    expect(terminationMessageFromCriLog(log, { maxLines: 0 })).toBe("");
  });

  it("cuts long logs to their last 2048 bytes", () => {
    const line = "x".repeat(99);
    const log = Array.from({ length: 50 }, (_, i) => out(`${String(i).padStart(2, "0")}${line}`)).join("");
    const msg = terminationMessageFromCriLog(log);
    expect(Buffer.byteLength(msg)).toBe(MAX_TERMINATION_MESSAGE_LOG_BYTES);
    expect(msg.endsWith(`49${line}\n`)).toBe(true);
    // 50 lines of 102 bytes: the message starts 2048 bytes before the end.
    const full = criLogContent(log).toString("utf8");
    expect(full.length).toBe(50 * 102);
    expect(msg).toBe(full.slice(full.length - MAX_TERMINATION_MESSAGE_LOG_BYTES));
  });

  it("drops a UTF-8 character cut at the start of the message", () => {
    // "éabc\n" is 6 bytes ("é" is 2): a 5-byte limit falls into the middle of "é".
    expect(terminationMessageFromCriLog(out("éabc"), { maxBytes: 5 })).toBe("abc\n");
    expect(terminationMessageFromCriLog(out("éabc"), { maxBytes: 6 })).toBe("éabc\n");
  });

  it("drops the first, possibly cut, line of a file suffix", () => {
    const log = `out F cut-off\n${out("whole")}`;
    expect(terminationMessageFromCriLog(log, { fromStart: false })).toBe("whole\n");
    expect(terminationMessageFromCriLog(out("only"), { fromStart: false })).toBe("");
  });
});

describe("termination message files", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "wn-termmsg-test-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads at most the last 4096 bytes of the message file", async () => {
    const f = path.join(dir, "termination-log");
    writeFileSync(f, `${"a".repeat(10)}${"b".repeat(MAX_TERMINATION_MESSAGE_BYTES)}`);
    expect(await readFileTail(f, MAX_TERMINATION_MESSAGE_BYTES)).toBe(
      "b".repeat(MAX_TERMINATION_MESSAGE_BYTES),
    );
    writeFileSync(f, "short");
    expect(await readFileTail(f, MAX_TERMINATION_MESSAGE_BYTES)).toBe("short");
  });

  it("reads the message from the end of a long log file", async () => {
    const f = path.join(dir, "0.log");
    // ~40 KiB of lines: more than one block of the backwards read.
    const lines = Array.from({ length: 1000 }, (_, i) => (i % 2 ? out(`line ${i}`) : err(`line ${i}`)));
    writeFileSync(f, lines.join(""));
    const expected = terminationMessageFromCriLog(lines.join(""));
    expect(expected.endsWith("line 998\nline 999\n")).toBe(true);
    expect(await readTerminationMessageFromLog(f)).toBe(expected);
  });

  it("reads a long line split into partial entries across blocks", async () => {
    const f = path.join(dir, "1.log");
    const chunk = "y".repeat(16 * 1024);
    const log = out("before") + out(chunk, "P") + out(chunk, "P") + out("z-end");
    writeFileSync(f, log);
    const msg = await readTerminationMessageFromLog(f);
    expect(msg).toBe(terminationMessageFromCriLog(log));
    expect(msg).toBe(`${"y".repeat(MAX_TERMINATION_MESSAGE_LOG_BYTES - 6)}z-end\n`);
  });

  it("reads a short log whole and gives '' for a missing one", async () => {
    const f = path.join(dir, "2.log");
    writeFileSync(f, out("a") + out("b"));
    expect(await readTerminationMessageFromLog(f)).toBe("a\nb\n");
    expect(await readTerminationMessageFromLog(path.join(dir, "missing.log"))).toBe("");
  });
});

describe("RuntimeInspector: termination messages of exited containers", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "wn-termmsg-inspect-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const specs: Container[] = [
    container("fallback", { terminationMessagePolicy: "FallbackToLogsOnError" }),
    container("file-policy"),
    container("fallback-ok", { terminationMessagePolicy: "FallbackToLogsOnError" }),
    container("fallback-file", { terminationMessagePolicy: "FallbackToLogsOnError" }),
  ];
  const p = pod({ containers: specs });
  const exits: Record<string, number> = {
    fallback: 3,
    "file-policy": 3,
    "fallback-ok": 0,
    "fallback-file": 2,
  };
  const fileMessages: Record<string, string> = { "fallback-file": "from the file" };

  const listed: CriContainer[] = specs.map((c, i) =>
    CriContainer.fromPartial({
      id: `c${i}`,
      podSandboxId: "sb",
      metadata: { name: c.name, attempt: 0 },
      image: { image: c.image ?? "" },
      imageRef: "sha256:1",
      state: ContainerState.CONTAINER_EXITED,
      createdAt: 1n,
      labels: containerLabels(p, c),
      annotations: containerAnnotations(p, c, 0),
    }),
  );
  const statuses = new Map<string, CriContainerStatus>();
  for (const [i, c] of specs.entries()) {
    const logPath = path.join(dir, `${c.name}.log`);
    writeFileSync(logPath, out(`${c.name} says hi`) + err(`${c.name} failed`));
    const hostPath = path.join(dir, `${c.name}.termination-log`);
    writeFileSync(hostPath, fileMessages[c.name] ?? "");
    statuses.set(
      `c${i}`,
      CriContainerStatus.fromPartial({
        id: `c${i}`,
        metadata: { name: c.name, attempt: 0 },
        state: ContainerState.CONTAINER_EXITED,
        createdAt: 1n,
        startedAt: 2_000_000n,
        finishedAt: 3_000_000n,
        exitCode: exits[c.name] ?? 0,
        reason: exits[c.name] ? "Error" : "Completed",
        labels: containerLabels(p, c),
        annotations: containerAnnotations(p, c, 0),
        logPath,
        mounts: [{ containerPath: "/dev/termination-log", hostPath }],
      }),
    );
  }
  const client = {
    runtime: {
      listPodSandbox: async () => ({ items: [] }),
      listContainers: async () => ({ containers: listed }),
      containerStatus: async ({ containerId }: { containerId: string }) => ({
        status: statuses.get(containerId),
      }),
    },
  } as unknown as CriClient;

  it("uses the log tail only for a failed FallbackToLogsOnError container with an empty file", async () => {
    const rs = await new RuntimeInspector(client).podStatus("uid-1", "web", "default");
    const message = (name: string) => rs.containers.find((c) => c.name === name)?.message;
    expect(message("fallback")).toBe("fallback says hi\nfallback failed\n");
    expect(message("file-policy")).toBeUndefined();
    expect(message("fallback-ok")).toBeUndefined();
    expect(message("fallback-file")).toBe("from the file");
    expect(rs.containers.find((c) => c.name === "fallback")?.exitCode).toBe(3);
  });
});
