import { describe, expect, it } from "vitest";
import {
  CriLogFormatter,
  formatLogTimestamp,
  parseCriLogLine,
  splitLines,
  tailStartOffset,
} from "../../src/server/cri-log.js";

const b = (s: string) => Buffer.from(s);

function render(text: string, timestamps = false): string {
  const f = new CriLogFormatter(timestamps);
  const { lines, rest } = splitLines(b(text));
  const out = lines.map((l) => f.format(l)?.toString() ?? "");
  if (rest.length) out.push(f.format(rest, false)?.toString() ?? "");
  return out.join("");
}

describe("CRI log lines", () => {
  it("parses time, stream, tag and content (content may contain spaces or be empty)", () => {
    const e = parseCriLogLine(b("2024-05-01T10:00:00.123456789Z stdout F hello  world "))!;
    expect(e.timestamp).toBe("2024-05-01T10:00:00.123456789Z");
    expect(e.stream).toBe("stdout");
    expect(e.partial).toBe(false);
    expect(e.content.toString()).toBe("hello  world ");
    const p = parseCriLogLine(b("2024-05-01T10:00:00Z stderr P:x "))!;
    expect(p).toMatchObject({ stream: "stderr", partial: true });
    expect(p.content.length).toBe(0);
  });

  it("rejects malformed lines", () => {
    expect(parseCriLogLine(b(""))).toBeUndefined();
    expect(parseCriLogLine(b("2024-05-01T10:00:00Z"))).toBeUndefined();
    expect(parseCriLogLine(b("2024-05-01T10:00:00Z stdin F x"))).toBeUndefined();
    expect(parseCriLogLine(b("2024-05-01T10:00:00Z stdout F"))).toBeUndefined();
    expect(parseCriLogLine(b('{"log":"docker json\\n"}'))).toBeUndefined();
  });

  it("formats timestamps with nine fractional digits and Z for a zero offset", () => {
    expect(formatLogTimestamp("2024-05-01T10:00:00.5Z")).toBe("2024-05-01T10:00:00.500000000Z");
    expect(formatLogTimestamp("2024-05-01T10:00:00Z")).toBe("2024-05-01T10:00:00.000000000Z");
    expect(formatLogTimestamp("2024-05-01T10:00:00.123456789+02:00")).toBe(
      "2024-05-01T10:00:00.123456789+02:00",
    );
    expect(formatLogTimestamp("2024-05-01T10:00:00.1+00:00")).toBe("2024-05-01T10:00:00.100000000Z");
    expect(formatLogTimestamp("garbage")).toBe("garbage");
  });

  it("joins partial entries into one output line, timestamp from its first entry", () => {
    const text = [
      "2024-05-01T10:00:00.1Z stdout P hel",
      "2024-05-01T10:00:00.2Z stdout P lo ",
      "2024-05-01T10:00:00.3Z stdout F world",
      "2024-05-01T10:00:01Z stderr F oops",
      "",
    ].join("\n");
    expect(render(text)).toBe("hello world\noops\n");
    expect(render(text, true)).toBe(
      "2024-05-01T10:00:00.100000000Z hello world\n2024-05-01T10:00:01.000000000Z oops\n",
    );
  });

  it("skips malformed lines and writes an unfinished last line without a newline", () => {
    const text = "2024-05-01T10:00:00Z stdout F a\nnot a log line\n2024-05-01T10:00:01Z stdout F b";
    expect(render(text)).toBe("a\nb");
  });
});

describe("tailStartOffset", () => {
  const lines = [
    "2024-05-01T10:00:00Z stdout F one",
    "2024-05-01T10:00:01Z stdout P tw",
    "2024-05-01T10:00:02Z stdout F o",
    "2024-05-01T10:00:03Z stdout F three",
  ];
  const text = `${lines.join("\n")}\n`;
  const buf = b(text);

  it("counts a run of partial entries as one line", () => {
    expect(render(buf.subarray(tailStartOffset(buf, 1)).toString())).toBe("three\n");
    expect(render(buf.subarray(tailStartOffset(buf, 2)).toString())).toBe("two\nthree\n");
    expect(render(buf.subarray(tailStartOffset(buf, 3)).toString())).toBe("one\ntwo\nthree\n");
  });

  it("returns 0 for more lines than the file has and the end for 0 lines", () => {
    expect(tailStartOffset(buf, 10)).toBe(0);
    expect(tailStartOffset(buf, 0)).toBe(buf.length);
    expect(tailStartOffset(Buffer.alloc(0), 3)).toBe(0);
  });

  it("counts an unfinished partial run at the end as a line", () => {
    const t = b(`${text}2024-05-01T10:00:04Z stdout P fou`);
    expect(render(t.subarray(tailStartOffset(t, 1)).toString())).toBe("fou");
  });
});
