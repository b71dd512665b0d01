import type { Pod } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { clusterDnsMissing, missingClusterDnsMessage } from "../../src/dns.js";

const pod = (spec: Partial<NonNullable<Pod["spec"]>>): Pod => ({
  metadata: { name: "p", namespace: "ns", uid: "u" },
  spec: { containers: [], ...spec },
});

describe("MissingClusterDNS", () => {
  it("applies to pods that want cluster DNS when the kubelet has no clusterDNS", () => {
    const none = { clusterDNS: [] };
    expect(clusterDnsMissing(pod({}), none)).toBe(true);
    expect(clusterDnsMissing(pod({ dnsPolicy: "ClusterFirstWithHostNet", hostNetwork: true }), none)).toBe(
      true,
    );
    expect(clusterDnsMissing(pod({ dnsPolicy: "ClusterFirst", hostNetwork: true }), none)).toBe(false);
    expect(clusterDnsMissing(pod({ dnsPolicy: "Default" }), none)).toBe(false);
    expect(clusterDnsMissing(pod({ dnsPolicy: "None" }), none)).toBe(false);
    expect(clusterDnsMissing(pod({}), { clusterDNS: ["10.96.0.10"] })).toBe(false);
  });

  it("uses kubelet's message", () => {
    expect(missingClusterDnsMessage("p_ns(u)")).toBe(
      'pod: "p_ns(u)". kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.',
    );
  });
});
