import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  CriStreamProtocolError,
  encodeDataFrames,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSynStream,
  remoteCommandStreamIds,
  SPDY_FLAG_FIN,
  SpdyFrameParser,
  SpdyFrameType,
  SpdyHeaderWriter,
} from "../../src/index.js";

const inflate = (bytes: Buffer) => zlib.inflateSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });

describe("SPDY header blocks", () => {
  it("encode counts and lengths big-endian with lowercased names", () => {
    expect(encodeHeaderBlock({ streamType: "error" })).toEqual(
      Buffer.concat([
        Buffer.from([0, 0, 0, 1, 0, 0, 0, 10]),
        Buffer.from("streamtype"),
        Buffer.from([0, 0, 0, 5]),
        Buffer.from("error"),
      ]),
    );
  });

  it("form one zlib stream across frames that any inflater reads frame by frame", () => {
    const writer = new SpdyHeaderWriter();
    const a = encodeHeaderBlock({ streamtype: "error" });
    const b = encodeHeaderBlock({ streamtype: "stdout", port: "8080" });
    const first = writer.wrap(a);
    const second = writer.wrap(b);
    expect([...first.subarray(0, 2)]).toEqual([0x78, 0x01]);
    expect(first.subarray(-5)).toEqual(Buffer.from([0, 0, 0, 0xff, 0xff]));
    expect(inflate(first)).toEqual(a);
    expect(inflate(Buffer.concat([first, second]))).toEqual(Buffer.concat([a, b]));
  });

  it("split blocks larger than a stored block holds", () => {
    const big = encodeHeaderBlock({ x: "v".repeat(70_000) });
    expect(inflate(new SpdyHeaderWriter().wrap(big))).toEqual(big);
  });
});

describe("SPDY frames out", () => {
  it("SYN_STREAM: version 3 control frame with the stream id and the header block", () => {
    const frame = encodeSynStream(3, { streamtype: "stdin" }, new SpdyHeaderWriter());
    expect([...frame.subarray(0, 4)]).toEqual([0x80, 0x03, 0x00, SpdyFrameType.SYN_STREAM]);
    expect(frame.readUInt32BE(4) & 0xffffff).toBe(frame.length - 8);
    expect(frame.readUInt32BE(8)).toBe(3);
    expect(frame.readUInt32BE(12)).toBe(0);
    expect(inflate(frame.subarray(18))).toEqual(encodeHeaderBlock({ streamtype: "stdin" }));
  });

  it("DATA: FIN on the last frame only, an empty frame to just close", () => {
    const data = encodeDataFrames(5, Buffer.from("hi"), true);
    expect([...data]).toEqual([0, 0, 0, 5, SPDY_FLAG_FIN, 0, 0, 2, 104, 105]);
    expect([...encodeDataFrames(7, Buffer.alloc(0), true)]).toEqual([0, 0, 0, 7, SPDY_FLAG_FIN, 0, 0, 0]);
    expect([...encodeDataFrames(7, Buffer.from("x"))]).toEqual([0, 0, 0, 7, 0, 0, 0, 1, 120]);
  });

  it("RST_STREAM and PING", () => {
    expect([...encodeRstStream(1, 5)]).toEqual([0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 5]);
    expect([...encodePing(2)]).toEqual([0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2]);
  });
});

describe("SpdyFrameParser", () => {
  const frames = Buffer.concat([
    encodeDataFrames(3, Buffer.from("out"), false),
    encodeRstStream(1, 5),
    encodeDataFrames(3, Buffer.alloc(0), true),
  ]);

  it("parses several frames from one chunk", () => {
    const parsed = new SpdyFrameParser().push(frames);
    expect(parsed).toEqual([
      { kind: "data", streamId: 3, flags: 0, data: Buffer.from("out") },
      {
        kind: "control",
        type: SpdyFrameType.RST_STREAM,
        flags: 0,
        payload: Buffer.from([0, 0, 0, 1, 0, 0, 0, 5]),
      },
      { kind: "data", streamId: 3, flags: SPDY_FLAG_FIN, data: Buffer.alloc(0) },
    ]);
  });

  it("reassembles frames fed byte by byte", () => {
    const parser = new SpdyFrameParser();
    const parsed = [...frames].flatMap((b) => parser.push(Buffer.from([b])));
    expect(parsed).toEqual(new SpdyFrameParser().push(frames));
  });

  it("rejects control frames of another SPDY version", () => {
    const v2 = Buffer.from([0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
    expect(() => new SpdyFrameParser().push(v2)).toThrow(CriStreamProtocolError);
  });
});

describe("remote-command SPDY streams", () => {
  it("are exactly the ones the server waits for, with odd ids in kubectl's order", () => {
    expect([...remoteCommandStreamIds({ stdin: true, stdout: true, stderr: true, tty: false })]).toEqual([
      ["error", 1],
      ["stdin", 3],
      ["stdout", 5],
      ["stderr", 7],
    ]);
    expect([...remoteCommandStreamIds({ stdin: true, stdout: true, stderr: true, tty: true })]).toEqual([
      ["error", 1],
      ["stdin", 3],
      ["stdout", 5],
      ["resize", 7],
    ]);
    expect([...remoteCommandStreamIds({ stdin: false, stdout: false, stderr: true, tty: false })]).toEqual([
      ["error", 1],
      ["stderr", 3],
    ]);
  });
});
