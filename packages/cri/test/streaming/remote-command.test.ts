import { PassThrough, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  CriStreamError,
  CriStreamProtocolError,
  pumpStdin,
  RemoteCommandReceiver,
  type RemoteCommandTransport,
} from "../../src/index.js";

/** A transport that records what the session does with it. */
function recordingTransport() {
  const events: string[] = [];
  const stdin: Buffer[] = [];
  const transport: RemoteCommandTransport = {
    protocol: "test",
    writable: true,
    sendStdin: async (data) => {
      stdin.push(data);
    },
    endStdin: async () => {
      events.push("endStdin");
    },
    sendResize: async () => {},
    pause: () => events.push("pause"),
    resume: () => events.push("resume"),
    close: () => events.push("close"),
  };
  return { transport, events, stdin };
}

const status = (s: unknown) => Buffer.from(JSON.stringify(s));

describe("RemoteCommandReceiver", () => {
  it("routes stdout and stderr and resolves with the exit code of the v4 status", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const sink = (into: string[]) =>
      new Writable({
        write(c: Buffer, _e, cb) {
          into.push(c.toString());
          cb();
        },
      });
    const r = new RemoteCommandReceiver("exec", { stdout: sink(out), stderr: sink(err) });
    r.stdout(Buffer.from("a"));
    r.stdout(Buffer.alloc(0));
    r.stderr(Buffer.from("b"));
    // The status may arrive split over frames.
    const bytes = status({
      status: "Failure",
      reason: "NonZeroExitCode",
      details: { causes: [{ reason: "ExitCode", message: "42" }] },
    });
    r.error(bytes.subarray(0, 10));
    r.error(bytes.subarray(10));
    r.closed(undefined, true);
    expect(await r.result).toEqual({ exitCode: 42 });
    expect(out).toEqual(["a"]);
    expect(err).toEqual(["b"]);
  });

  it("rejects with a CriStreamError carrying the status of a failure", async () => {
    const r = new RemoteCommandReceiver("attach", {});
    r.error(status({ status: "Failure", message: "container not running", reason: "InternalError" }));
    r.closed(undefined, true);
    const e = await r.result.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CriStreamError);
    expect((e as CriStreamError).operation).toBe("attach");
    expect((e as CriStreamError).status?.reason).toBe("InternalError");
    expect((e as Error).message).toBe("CRI attach stream: container not running");
  });

  it("rejects when the connection closes without a status, or with the transport's failure", async () => {
    const silent = new RemoteCommandReceiver("exec", {});
    silent.closed(undefined, true);
    await expect(silent.result).rejects.toThrow(/closed before the command's status/);
    const broken = new RemoteCommandReceiver("exec", {});
    broken.closed(new Error("reset"), true);
    await expect(broken.result).rejects.toThrow("reset");
    const garbage = new RemoteCommandReceiver("exec", {});
    garbage.error(Buffer.from("not json"));
    garbage.closed(undefined, true);
    await expect(garbage.result).rejects.toBeInstanceOf(CriStreamProtocolError);
  });

  it("pauses the transport while a local stream is full and resumes on drain", async () => {
    const slow = new PassThrough({ highWaterMark: 4 });
    const r = new RemoteCommandReceiver("exec", { stdout: slow });
    const { transport, events } = recordingTransport();
    r.transport = transport;
    r.stdout(Buffer.from("12345678"));
    r.stdout(Buffer.from("more"));
    expect(events).toEqual(["pause"]);
    slow.read();
    await new Promise((res) => setImmediate(res));
    expect(events).toEqual(["pause", "resume"]);
  });
});

describe("pumpStdin", () => {
  it("sends every chunk in order and signals the end", async () => {
    const { transport, events, stdin } = recordingTransport();
    const input = new PassThrough();
    let finish!: () => void;
    pumpStdin(input, transport, new Promise<void>((r) => (finish = r)));
    input.write("one ");
    input.end("two");
    await new Promise((res) => setTimeout(res, 20));
    expect(Buffer.concat(stdin).toString()).toBe("one two");
    expect(events).toEqual(["endStdin"]);
    finish();
  });
});
