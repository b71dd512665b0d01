import { describe, expect, it } from "vitest";
import { cidrContains, formatCidr, ipFamilyOf, isValidIP, normalizeIP, parseCidr } from "../../src/net/ip.js";

describe("normalizeIP", () => {
  it("canonicalises IPv4 and IPv6", () => {
    expect(normalizeIP("10.96.0.1")).toBe("10.96.0.1");
    expect(normalizeIP("2001:DB8:0:0:0:0:0:1")).toBe("2001:db8::1");
    expect(normalizeIP("::ffff:10.0.0.1")).toBe("::ffff:a00:1");
  });

  it("rejects what Kubernetes rejects", () => {
    for (const bad of [
      "",
      "10.0.0",
      "10.0.0.256",
      "010.0.0.1",
      "1.2.3.4/32",
      "fe80::1%eth0",
      "host",
      "0x1.2.3.4",
    ]) {
      expect(normalizeIP(bad), bad).toBeUndefined();
      expect(isValidIP(bad), bad).toBe(false);
    }
  });

  it("tells the family", () => {
    expect(ipFamilyOf("192.0.2.1")).toBe("IPv4");
    expect(ipFamilyOf("fd00::1")).toBe("IPv6");
    expect(ipFamilyOf("nope")).toBeUndefined();
  });
});

describe("parseCidr / cidrContains", () => {
  it("clears host bits and checks membership per family", () => {
    const c = parseCidr("10.244.3.7/16")!;
    expect(formatCidr(c)).toBe("10.244.0.0/16");
    expect(cidrContains(c, "10.244.200.1")).toBe(true);
    expect(cidrContains(c, "10.245.0.1")).toBe(false);
    expect(cidrContains(c, "fd00::1")).toBe(false);
    const v6 = parseCidr("FD00:10:244::/64")!;
    expect(v6).toEqual({ address: "fd00:10:244::", prefix: 64, family: "IPv6" });
    expect(cidrContains(v6, "fd00:10:244::42")).toBe(true);
  });

  it("rejects malformed blocks", () => {
    for (const bad of ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/a", "::/129", "x/8"]) {
      expect(parseCidr(bad), bad).toBeUndefined();
    }
  });
});
