import { describe, expect, it } from "vitest";
import {
  chainHash,
  endpointChain,
  isServiceChainName,
  servicePortChains,
  servicePortNameString,
} from "../src/render/chain-names.js";
import { probability } from "../src/render/probability.js";

// Chain names taken from kube-proxy's own golden tests (pkg/proxy/iptables/proxier_test.go).
describe("chain names match kube-proxy", () => {
  it.each([
    ["ns1/svc1:p80", "KUBE-SVC-XPGD46QRK7WJZT7O"],
    ["ns2/svc2:p80", "KUBE-SVC-GNZBNJ2PO5MGZ6GT"],
    ["ns3/svc3:p80", "KUBE-SVC-X27LE4BHSL4DOUIK"],
    ["ns4/svc4:p80", "KUBE-SVC-4SW47YFZTEDKD3PK"],
    ["ns5/svc5:p80", "KUBE-SVC-NUKIZ6OKUXPJNT4C"],
  ])("service port %s over tcp is %s", (name, expected) => {
    expect(servicePortChains(name, "tcp").svc).toBe(expected);
  });

  it("uses the same hash for the SVL, EXT and FW chains", () => {
    expect(servicePortChains("ns2/svc2:p80", "tcp")).toEqual({
      svc: "KUBE-SVC-GNZBNJ2PO5MGZ6GT",
      svl: "KUBE-SVL-GNZBNJ2PO5MGZ6GT",
      ext: "KUBE-EXT-GNZBNJ2PO5MGZ6GT",
      fw: "KUBE-FW-GNZBNJ2PO5MGZ6GT",
    });
  });

  it.each([
    ["ns1/svc1:p80", "10.180.0.1:80", "KUBE-SEP-SXIVWICOYRO3J4NJ"],
    ["ns2/svc2:p80", "10.180.0.2:80", "KUBE-SEP-RS4RBKLTHTF2IUXJ"],
    ["ns3/svc3:p80", "10.180.0.3:80", "KUBE-SEP-OYPFS5VJICHGATKP"],
    ["ns4/svc4:p80", "10.180.0.4:80", "KUBE-SEP-UKSFD7AGPMPPLUHC"],
    ["ns4/svc4:p80", "10.180.0.5:80", "KUBE-SEP-C6EBXVWJJZMIWKLZ"],
    ["ns5/svc5:p80", "10.180.0.3:80", "KUBE-SEP-I77PXRDZVX7PMWMN"],
  ])("endpoint %s %s is %s", (name, address, expected) => {
    expect(endpointChain(name, "tcp", address)).toBe(expected);
  });

  it("hashes differ by protocol", () => {
    expect(servicePortChains("ns1/svc1:p80", "udp").svc).not.toBe("KUBE-SVC-XPGD46QRK7WJZT7O");
  });

  it("chain hash is 16 base32 characters, names fit iptables' 28-character limit", () => {
    expect(chainHash("anything")).toMatch(/^[A-Z2-7]{16}$/);
    expect(endpointChain("a/b:c", "sctp", "[fd00::1]:80").length).toBeLessThanOrEqual(28);
  });

  it("formats the service port name as ServicePortName.String() does", () => {
    expect(servicePortNameString({ namespace: "ns1", name: "svc1", port: "p80" })).toBe("ns1/svc1:p80");
    expect(servicePortNameString({ namespace: "ns1", name: "svc1", port: "" })).toBe("ns1/svc1");
  });

  it("recognises per-service chains only", () => {
    for (const c of ["KUBE-SVC-X", "KUBE-SVL-X", "KUBE-EXT-X", "KUBE-FW-X", "KUBE-SEP-X"]) {
      expect(isServiceChainName(c)).toBe(true);
    }
    for (const c of ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "FOO"]) {
      expect(isServiceChainName(c)).toBe(false);
    }
  });
});

describe("probability", () => {
  it("formats 1/n with ten decimals like Go's %0.10f", () => {
    expect(probability(2)).toBe("0.5000000000");
    expect(probability(3)).toBe("0.3333333333");
    expect(probability(6)).toBe("0.1666666667");
    expect(probability(7)).toBe("0.1428571429");
    expect(probability(1000)).toBe("0.0010000000");
  });

  it("rounds exact ties to even as Go does (1/2048 = 0.00048828125)", () => {
    expect(probability(2048)).toBe("0.0004882812");
    expect(probability(4096)).toBe("0.0002441406");
  });
});
