import { describe, expect, it } from "vitest";
import {
  CriStreamProtocolError,
  decodeChannelFrame,
  encodeChannelFrame,
  encodeResize,
  PortPrefixReader,
  parseRemoteCommandOutcome,
} from "../../src/index.js";

describe("channel frames", () => {
  it("encodes binary frames with the channel byte first", () => {
    expect(encodeChannelFrame(0, Buffer.from("foo\n"), false)).toEqual(Buffer.from([0, 102, 111, 111, 10]));
    expect(encodeChannelFrame(4, new Uint8Array(), false)).toEqual(Buffer.from([4]));
  });

  it("encodes base64 frames as a channel digit and base64 data", () => {
    expect(encodeChannelFrame(0, Buffer.from("foo\n"), true)).toBe("0Zm9vCg==");
    expect(encodeChannelFrame(3, new Uint8Array(), true)).toBe("3");
  });

  it("refuses channels the protocol cannot carry", () => {
    expect(() => encodeChannelFrame(256, Buffer.alloc(1), false)).toThrow(CriStreamProtocolError);
    expect(() => encodeChannelFrame(10, Buffer.alloc(1), true)).toThrow(CriStreamProtocolError);
    expect(() => encodeChannelFrame(-1, Buffer.alloc(1), false)).toThrow(CriStreamProtocolError);
  });

  it("decodes binary frames, including empty data (the server's ready frame)", () => {
    expect(decodeChannelFrame(Buffer.from([1]), false)).toEqual({ channel: 1, data: Buffer.alloc(0) });
    const f = decodeChannelFrame(Buffer.from([2, 0, 255, 10]), false);
    expect(f.channel).toBe(2);
    expect([...f.data]).toEqual([0, 255, 10]);
  });

  it("decodes base64 frames from text or bytes", () => {
    expect(decodeChannelFrame("1Cg==", true)).toEqual({ channel: 1, data: Buffer.from("\n") });
    expect(decodeChannelFrame(Buffer.from("2"), true)).toEqual({ channel: 2, data: Buffer.alloc(0) });
  });

  it("rejects empty messages, bad channel digits and invalid base64", () => {
    expect(() => decodeChannelFrame(Buffer.alloc(0), false)).toThrow(CriStreamProtocolError);
    expect(() => decodeChannelFrame("", true)).toThrow(/empty message/);
    expect(() => decodeChannelFrame("xZm9v", true)).toThrow(/bad channel/);
    expect(() => decodeChannelFrame("1Zm9v!", true)).toThrow(/invalid base64/);
    expect(decodeChannelFrame("1Zm9v", true).data.toString()).toBe("foo");
    expect(() => decodeChannelFrame("1Zm9vC", true)).toThrow(/invalid base64/);
  });

  it("round-trips every byte value in both encodings", () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    for (const base64 of [false, true]) {
      const frame = decodeChannelFrame(encodeChannelFrame(1, all, base64), base64);
      expect(frame.channel).toBe(1);
      expect(frame.data.equals(all)).toBe(true);
    }
  });
});

describe("resize messages", () => {
  it("are the JSON the server decodes", () => {
    expect(encodeResize({ width: 120, height: 40 }).toString()).toBe('{"Width":120,"Height":40}');
  });

  it("refuse sizes a terminal cannot have", () => {
    expect(() => encodeResize({ width: -1, height: 4 })).toThrow(CriStreamProtocolError);
    expect(() => encodeResize({ width: 1.5, height: 4 })).toThrow(CriStreamProtocolError);
    expect(() => encodeResize({ width: 80, height: 70_000 })).toThrow(CriStreamProtocolError);
  });
});

describe("the error channel's outcome", () => {
  const v4 = (s: unknown) => Buffer.from(JSON.stringify(s));

  it("reads success as exit code 0", () => {
    expect(parseRemoteCommandOutcome(v4({ metadata: {}, status: "Success" }), true)).toEqual({
      kind: "exited",
      exitCode: 0,
    });
  });

  it("reads the ExitCode cause of a NonZeroExitCode failure", () => {
    const status = {
      metadata: {},
      status: "Failure",
      message: "command terminated with non-zero exit code: exit status 3",
      reason: "NonZeroExitCode",
      details: { causes: [{ reason: "ExitCode", message: "3" }] },
    };
    expect(parseRemoteCommandOutcome(v4(status), true)).toEqual({ kind: "exited", exitCode: 3 });
  });

  it("reports any other failure with its status", () => {
    const status = {
      status: "Failure",
      message: "executable file not found",
      reason: "InternalError",
      code: 500,
    };
    expect(parseRemoteCommandOutcome(v4(status), true)).toEqual({ kind: "failed", status });
    const noCause = { status: "Failure", reason: "NonZeroExitCode", details: { causes: [] } };
    expect(parseRemoteCommandOutcome(v4(noCause), true)).toEqual({ kind: "failed", status: noCause });
  });

  it("rejects statuses that are not JSON objects or whose exit code is not a number", () => {
    expect(() => parseRemoteCommandOutcome(Buffer.from("oops"), true)).toThrow(CriStreamProtocolError);
    expect(() => parseRemoteCommandOutcome(Buffer.from("[1]"), true)).toThrow(/no status object/);
    const bad = {
      status: "Failure",
      reason: "NonZeroExitCode",
      details: { causes: [{ reason: "ExitCode", message: "x" }] },
    };
    expect(() => parseRemoteCommandOutcome(v4(bad), true)).toThrow(/not a whole number/);
  });

  it("reads pre-v4 plain messages: none is success, text is a failure", () => {
    expect(parseRemoteCommandOutcome(Buffer.alloc(0), false)).toEqual({ kind: "exited", exitCode: 0 });
    expect(parseRemoteCommandOutcome(Buffer.from("exit status 2"), false)).toEqual({
      kind: "failed",
      status: { status: "Failure", message: "exit status 2" },
    });
  });
});

describe("port-forward's port prefix", () => {
  it("strips the little-endian port from the first frame", () => {
    const r = new PortPrefixReader();
    expect(r.push(Buffer.from([0x90, 0x1f, 72, 73]))).toEqual(Buffer.from("HI"));
    expect(r.port).toBe(8080);
    expect(r.push(Buffer.from([0x90, 0x1f]))).toEqual(Buffer.from([0x90, 0x1f]));
  });

  it("handles a prefix split over frames and empty frames", () => {
    const r = new PortPrefixReader();
    expect(r.push(Buffer.alloc(0))).toEqual(Buffer.alloc(0));
    expect(r.push(Buffer.from([80]))).toEqual(Buffer.alloc(0));
    expect(r.port).toBeUndefined();
    expect(r.push(Buffer.from([0, 1, 2]))).toEqual(Buffer.from([1, 2]));
    expect(r.port).toBe(80);
  });

  it("yields nothing for a frame that is only the prefix", () => {
    const r = new PortPrefixReader();
    expect(r.push(Buffer.from([0x50, 0x00]))).toHaveLength(0);
    expect(r.port).toBe(80);
  });
});
