import { describe, expect, it } from "vitest";
import { JsonLinesDecoder, toWatchEvent, WatchDecodeError } from "../../src/sources/kube-client-watch.js";

function decodeAll(decoder: JsonLinesDecoder, chunks: Buffer[]): unknown[] {
  const out: unknown[] = [];
  for (const c of chunks) decoder.push(c, (v) => out.push(v));
  return out;
}

function splitEvery(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

describe("JsonLinesDecoder", () => {
  const events = [
    { type: "ADDED", object: { metadata: { name: "a", annotations: { note: "grüße 🚀" } } } },
    { type: "MODIFIED", object: { metadata: { name: "b" } } },
    { type: "BOOKMARK", object: { metadata: { resourceVersion: "9" } } },
  ];
  const stream = Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(""));

  it("decodes whole lines in one chunk", () => {
    expect(decodeAll(new JsonLinesDecoder(), [stream])).toEqual(events);
  });

  it.each([1, 2, 3, 7, 64])(
    "decodes a stream split every %i bytes (also inside UTF-8 characters)",
    (size) => {
      const decoder = new JsonLinesDecoder();
      expect(decodeAll(decoder, splitEvery(stream, size))).toEqual(events);
      expect(decoder.hasPartial).toBe(false);
    },
  );

  it("holds an unterminated document until its newline arrives", () => {
    const decoder = new JsonLinesDecoder();
    const out: unknown[] = [];
    decoder.push(Buffer.from('{"a":1}\n{"b":'), (v) => out.push(v));
    expect(out).toEqual([{ a: 1 }]);
    expect(decoder.hasPartial).toBe(true);
    expect(decoder.partialBytes).toBe(5);
    decoder.push(Buffer.from("2}"), (v) => out.push(v));
    expect(out).toHaveLength(1);
    decoder.push(Buffer.from("\n"), (v) => out.push(v));
    expect(out).toEqual([{ a: 1 }, { b: 2 }]);
    expect(decoder.hasPartial).toBe(false);
  });

  it("skips blank lines and carriage returns", () => {
    expect(decodeAll(new JsonLinesDecoder(), [Buffer.from('\n\r\n{"a":1}\r\n\n')])).toEqual([{ a: 1 }]);
  });

  it("decodes a large object arriving in many chunks", () => {
    const big = { type: "ADDED", object: { metadata: { name: "big" }, data: "x".repeat(3_000_000) } };
    const decoder = new JsonLinesDecoder();
    const out = decodeAll(decoder, splitEvery(Buffer.from(`${JSON.stringify(big)}\n`), 16 * 1024));
    expect(out).toHaveLength(1);
    expect((out[0] as typeof big).object.data.length).toBe(3_000_000);
  });

  it("delivers the documents before a bad one, then throws", () => {
    const decoder = new JsonLinesDecoder();
    const out: unknown[] = [];
    expect(() => decoder.push(Buffer.from('{"a":1}\n{oops}\n{"c":3}\n'), (v) => out.push(v))).toThrow(
      WatchDecodeError,
    );
    expect(out).toEqual([{ a: 1 }]);
  });

  it("rejects a document longer than the limit", () => {
    const decoder = new JsonLinesDecoder(10);
    expect(() => decoder.push(Buffer.from('{"a":"0123456789"'), () => {})).toThrow(/longer than 10 bytes/);
    expect(decoder.hasPartial).toBe(false);
  });
});

describe("toWatchEvent", () => {
  it("accepts the five event types", () => {
    for (const type of ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]) {
      expect(toWatchEvent({ type, object: {} }).type).toBe(type);
    }
  });

  it("rejects unknown types and missing objects", () => {
    expect(() => toWatchEvent({ type: "SYNC", object: {} })).toThrow(WatchDecodeError);
    expect(() => toWatchEvent({ type: "ADDED" })).toThrow(/has no object/);
    expect(() => toWatchEvent([1])).toThrow(WatchDecodeError);
    expect(() => toWatchEvent(null)).toThrow(WatchDecodeError);
  });
});
