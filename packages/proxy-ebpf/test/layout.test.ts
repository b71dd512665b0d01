import { describe, expect, it } from "vitest";
import {
  BACKEND_KEY_SIZE,
  BACKEND_VALUE_SIZE,
  backendsSignature,
  decodeBackendKey,
  decodeBackendValue,
  decodeServiceKey,
  decodeServiceValue,
  encodeBackendKey,
  encodeBackendValue,
  encodeServiceKey,
  encodeServiceValue,
  frontendId,
  MapLayoutError,
  SERVICE_KEY_SIZE,
  SERVICE_VALUE_SIZE,
  toHexWords,
} from "../src/maps/layout.js";

const bytes = (...b: number[]) => Uint8Array.from(b);
const zeros = (n: number) => new Array<number>(n).fill(0);

describe("frontend keys (wn_svc_key)", () => {
  it("IPv4: address in addr[0..3], zero padding, port in network order, protocol number, family byte 4", () => {
    const key = encodeServiceKey({ ip: "10.96.0.1", port: 8080, protocol: "TCP" });
    expect(key).toHaveLength(SERVICE_KEY_SIZE);
    // 8080 = 0x1f90: big-endian 1f 90.
    expect([...key]).toEqual([10, 96, 0, 1, ...zeros(12), 0x1f, 0x90, 6, 4]);
    expect(toHexWords(key)).toBe("0a 60 00 01 00 00 00 00 00 00 00 00 00 00 00 00 1f 90 06 04");
  });

  it("IPv6: 16 address bytes, family byte 6; UDP 17 and SCTP 132", () => {
    const udp = encodeServiceKey({ ip: "fd00:96::1", port: 53, protocol: "UDP" });
    expect([...udp]).toEqual([0xfd, 0x00, 0x00, 0x96, ...zeros(11), 0x01, 0x00, 53, 17, 6]);
    const sctp = encodeServiceKey({ ip: "1.2.3.4", port: 0x1234, protocol: "SCTP" });
    expect([...sctp.subarray(16)]).toEqual([0x12, 0x34, 132, 4]);
  });

  it("round-trips IPv4 and IPv6 frontends of every protocol", () => {
    const frontends = [
      { ip: "10.96.0.1", port: 80, protocol: "TCP" },
      { ip: "127.0.0.1", port: 30080, protocol: "UDP" },
      { ip: "0.0.0.0", port: 0, protocol: "SCTP" },
      { ip: "255.255.255.255", port: 65535, protocol: "TCP" },
      { ip: "fd00:96::1", port: 443, protocol: "TCP" },
      { ip: "2001:db8::1:0:0:1", port: 53, protocol: "UDP" },
      { ip: "::ffff:102:304", port: 9, protocol: "SCTP" },
    ] as const;
    for (const f of frontends) expect(decodeServiceKey(encodeServiceKey(f))).toEqual(f);
  });

  it("decodes IPv6 addresses in canonical (RFC 5952) form", () => {
    const f = decodeServiceKey(
      encodeServiceKey({ ip: "FD00:0096:0:0:0:0:0:0001", port: 80, protocol: "TCP" }),
    );
    expect(f.ip).toBe("fd00:96::1");
  });

  it("frontendId tells frontends apart by address, port, protocol and family", () => {
    const a = frontendId({ ip: "10.0.0.1", port: 80, protocol: "TCP" });
    expect(a).toBe(toHexWords(encodeServiceKey({ ip: "10.0.0.1", port: 80, protocol: "TCP" })));
    expect(frontendId({ ip: "10.0.0.1", port: 80, protocol: "UDP" })).not.toBe(a);
    expect(frontendId({ ip: "10.0.0.1", port: 81, protocol: "TCP" })).not.toBe(a);
    expect(frontendId({ ip: "10.0.0.2", port: 80, protocol: "TCP" })).not.toBe(a);
    // An IPv6 address whose first four bytes are those of 10.0.0.1 differs by its family byte.
    expect(frontendId({ ip: "a00:1::", port: 80, protocol: "TCP" })).not.toBe(a);
  });
});

describe("frontend values (wn_svc_value)", () => {
  it("little-endian id, count, affinity timeout, then zero flags", () => {
    const v = encodeServiceValue({ id: 0x01020304, count: 3, affinityTimeout: 10800 });
    expect(v).toHaveLength(SERVICE_VALUE_SIZE);
    // 10800 = 0x2a30.
    expect([...v]).toEqual([0x04, 0x03, 0x02, 0x01, 3, 0, 0, 0, 0x30, 0x2a, 0, 0, 0, 0, 0, 0]);
  });

  it("round-trips, including the 32-bit extremes", () => {
    for (const v of [
      { id: 0, count: 0, affinityTimeout: 0 },
      { id: 1, count: 10, affinityTimeout: 86400 },
      { id: 0xffffffff, count: 0xffffffff, affinityTimeout: 0x80000000 },
    ])
      expect(decodeServiceValue(encodeServiceValue(v))).toEqual(v);
  });
});

describe("backend keys and values", () => {
  it("key: little-endian id and slot", () => {
    const k = encodeBackendKey(0x102, 7);
    expect(k).toHaveLength(BACKEND_KEY_SIZE);
    expect([...k]).toEqual([0x02, 0x01, 0, 0, 7, 0, 0, 0]);
    expect(decodeBackendKey(k)).toEqual({ id: 0x102, slot: 7 });
    expect(decodeBackendKey(encodeBackendKey(0xfffffffe, 0xffffffff))).toEqual({
      id: 0xfffffffe,
      slot: 0xffffffff,
    });
  });

  it("value: address, port in network order, family byte, zero pad", () => {
    const v4 = encodeBackendValue({ ip: "10.180.0.1", port: 8080 });
    expect(v4).toHaveLength(BACKEND_VALUE_SIZE);
    expect([...v4]).toEqual([10, 180, 0, 1, ...zeros(12), 0x1f, 0x90, 4, 0]);
    const v6 = encodeBackendValue({ ip: "fd00:10::2", port: 443 });
    expect([...v6]).toEqual([0xfd, 0, 0, 0x10, ...zeros(11), 2, 0x01, 0xbb, 6, 0]);
  });

  it("round-trips IPv4 and IPv6 backends", () => {
    for (const b of [
      { ip: "10.180.0.1", port: 8080 },
      { ip: "192.168.0.2", port: 1 },
      { ip: "fd00:10::2", port: 443 },
      { ip: "2001:db8::", port: 65535 },
    ])
      expect(decodeBackendValue(encodeBackendValue(b))).toEqual(b);
  });

  it("backendsSignature keeps slot order and brackets IPv6", () => {
    expect(
      backendsSignature([
        { ip: "10.0.0.1", port: 80 },
        { ip: "fd00::1", port: 8080 },
      ]),
    ).toBe("10.0.0.1:80,[fd00::1]:8080");
    expect(
      backendsSignature([
        { ip: "10.0.0.2", port: 80 },
        { ip: "10.0.0.1", port: 80 },
      ]),
    ).not.toBe(
      backendsSignature([
        { ip: "10.0.0.1", port: 80 },
        { ip: "10.0.0.2", port: 80 },
      ]),
    );
    expect(backendsSignature([])).toBe("");
  });
});

describe("errors", () => {
  it("rejects what is not an IP address", () => {
    for (const ip of ["", "nope", "10.0.0.256", "10.0.0.1/32", "fd00::1::2", "1.2.3", "10", "fe80::1%eth0"]) {
      expect(() => encodeServiceKey({ ip, port: 80, protocol: "TCP" }), ip).toThrow(MapLayoutError);
      expect(() => encodeBackendValue({ ip, port: 80 }), ip).toThrow(MapLayoutError);
    }
  });

  it("rejects ports outside 0-65535 and non-integers", () => {
    for (const port of [-1, 65536, 80.5, Number.NaN]) {
      expect(() => encodeServiceKey({ ip: "10.0.0.1", port, protocol: "TCP" }), String(port)).toThrow(
        MapLayoutError,
      );
      expect(() => encodeBackendValue({ ip: "10.0.0.1", port }), String(port)).toThrow(MapLayoutError);
    }
  });

  it("rejects ids, counts and timeouts that are not unsigned 32-bit integers", () => {
    expect(() => encodeServiceValue({ id: -1, count: 1, affinityTimeout: 0 })).toThrow(MapLayoutError);
    expect(() => encodeServiceValue({ id: 1, count: 2 ** 32, affinityTimeout: 0 })).toThrow(MapLayoutError);
    expect(() => encodeServiceValue({ id: 1, count: 1, affinityTimeout: 1.5 })).toThrow(MapLayoutError);
    expect(() => encodeBackendKey(1, -1)).toThrow(MapLayoutError);
  });

  it("rejects keys and values of the wrong size", () => {
    const key = encodeServiceKey({ ip: "10.0.0.1", port: 80, protocol: "TCP" });
    expect(() => decodeServiceKey(key.subarray(0, 19))).toThrow(MapLayoutError);
    expect(() => decodeServiceKey(new Uint8Array(21))).toThrow(/21 bytes, expected 20/);
    expect(() => decodeServiceValue(new Uint8Array(12))).toThrow(MapLayoutError);
    expect(() => decodeBackendKey(new Uint8Array(16))).toThrow(MapLayoutError);
    expect(() => decodeBackendValue(new Uint8Array(24))).toThrow(MapLayoutError);
  });

  it("rejects unknown protocol numbers and family bytes", () => {
    const key = encodeServiceKey({ ip: "10.0.0.1", port: 80, protocol: "TCP" });
    const badProto = Uint8Array.from(key);
    badProto[18] = 1;
    expect(() => decodeServiceKey(badProto)).toThrow(/protocol number 1/);
    const badFamily = Uint8Array.from(key);
    badFamily[19] = 2;
    expect(() => decodeServiceKey(badFamily)).toThrow(MapLayoutError);
    const backend = encodeBackendValue({ ip: "10.0.0.1", port: 80 });
    backend[18] = 0;
    expect(() => decodeBackendValue(backend)).toThrow(MapLayoutError);
  });

  it("MapLayoutError carries its code", () => {
    try {
      encodeBackendKey(2 ** 32, 0);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(MapLayoutError);
      expect((e as MapLayoutError).code).toBe("EBPF_MAP_LAYOUT");
    }
  });
});

describe("toHexWords", () => {
  it("two lower-case digits per byte, space-separated", () => {
    expect(toHexWords(bytes(0, 0xab, 0x0f, 0xff))).toBe("00 ab 0f ff");
    expect(toHexWords(new Uint8Array(0))).toBe("");
  });
});
