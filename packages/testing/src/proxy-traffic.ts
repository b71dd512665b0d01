/**
 * The traffic scenario the service-proxy backends' system tests share, on a {@link ProxyLab}:
 * a dual-stack client, an IPv4-only second client, and dual-stack pods on the node's bridge,
 * with addresses from a per-suite plan (so suites never share a subnet); and a UDP
 * conntrack-cleanup scenario whose observations each suite asserts.
 *
 * @module
 */
import { ConfigError, type Proxier } from "@worknode/core";
import { sleep } from "./exec.js";
import {
  createProxyLab,
  type LabClient,
  type LabNetns,
  type ProxyLab,
  udpConntrackTargets,
} from "./proxy-lab.js";
import {
  type LiveCommit,
  type LiveServiceObjects,
  type RecordingCommandRunner,
  waitFor,
} from "./proxy-test-helpers.js";
import { type EpSpec, type PortSpec, slice, svc } from "./service-objects.js";

/** Addresses of a traffic lab; see {@link trafficLabAddresses}. */
export interface TrafficLabPlan {
  /** The lab's name prefix (see {@link createProxyLab}). */
  readonly prefix: string;
  /** First three octets of the dual-stack client's link (client .2, node .1), e.g. `192.168.50`. */
  readonly clientNet: string;
  /** The /64 of that link without `::`, e.g. `fd00:50` (client ::2, node ::1). */
  readonly clientNet6: string;
  /** First three octets of the IPv4-only second client's link (client .2, node .1). */
  readonly client2Net: string;
  /** First three octets of the pods' bridge /24 (bridge .1, pods .11, .12, …), e.g. `10.244.0`. */
  readonly podNet: string;
  /** The bridge's /64 without `::`, e.g. `fd00:244` (bridge ::1, pods ::11, ::12, …). */
  readonly podNet6: string;
  /** Pod short names (lowercase letters and digits), in address order. */
  readonly pods: readonly string[];
}

/** The addresses of a {@link TrafficLabPlan}. */
export interface TrafficLabAddresses {
  /** The node on the dual-stack client's link. */
  readonly nodeIP: string;
  /** The node on the second client's link. */
  readonly nodeIP2: string;
  /** The node's IPv6 address on the dual-stack client's link. */
  readonly nodeIP6: string;
  /** The dual-stack client's IPv4 address. */
  readonly clientIP: string;
  /** The second client's address. */
  readonly client2IP: string;
  /** The bridge's addresses: what masqueraded traffic comes from. */
  readonly bridgeIP: string;
  readonly bridgeIP6: string;
  /** Every address of the node, for a proxier's `nodeIPs`. */
  readonly nodeIPs: readonly string[];
  /** A pod's IPv4 address. */
  podIP(name: string): string;
  /** A pod's IPv6 address. */
  podIP6(name: string): string;
}

/**
 * The addresses of a plan, known before the lab exists.
 *
 * @throws ConfigError from `podIP` / `podIP6` for a pod not in the plan
 */
export function trafficLabAddresses(plan: TrafficLabPlan): TrafficLabAddresses {
  const index = (name: string) => {
    const i = plan.pods.indexOf(name);
    if (i < 0) throw new ConfigError(`no pod ${name} in the traffic lab plan`);
    return 11 + i;
  };
  const nodeIP = `${plan.clientNet}.1`;
  const nodeIP2 = `${plan.client2Net}.1`;
  const nodeIP6 = `${plan.clientNet6}::1`;
  const bridgeIP = `${plan.podNet}.1`;
  return {
    nodeIP,
    nodeIP2,
    nodeIP6,
    clientIP: `${plan.clientNet}.2`,
    client2IP: `${plan.client2Net}.2`,
    bridgeIP,
    bridgeIP6: `${plan.podNet6}::1`,
    nodeIPs: [nodeIP, nodeIP2, bridgeIP, nodeIP6],
    podIP: (name) => `${plan.podNet}.${index(name)}`,
    podIP6: (name) => `${plan.podNet6}::${index(name)}`,
  };
}

/** A {@link ProxyLab} built from a {@link TrafficLabPlan}. */
export interface TrafficLab extends TrafficLabAddresses {
  readonly lab: ProxyLab;
  /** The dual-stack client (`cli`). */
  readonly client: LabClient;
  /** The IPv4-only client (`cli2`). */
  readonly client2: LabClient;
}

/**
 * Builds the lab of a plan: clients `cli` (dual-stack) and `cli2` (IPv4 only) on their own
 * links to the node, the bridge and the pods (both families).
 *
 * @throws ConfigError / WorknodeError as {@link createProxyLab} does
 */
export async function createTrafficLab(plan: TrafficLabPlan): Promise<TrafficLab> {
  const a = trafficLabAddresses(plan);
  const lab = await createProxyLab({
    prefix: plan.prefix,
    clients: [
      {
        name: "cli",
        addresses: [`${a.clientIP}/24`, `${plan.clientNet6}::2/64`],
        nodeAddresses: [`${a.nodeIP}/24`, `${a.nodeIP6}/64`],
      },
      { name: "cli2", addresses: [`${a.client2IP}/24`], nodeAddresses: [`${a.nodeIP2}/24`] },
    ],
    bridgeAddresses: [`${a.bridgeIP}/24`, `${a.bridgeIP6}/64`],
    pods: plan.pods.map((n) => ({ name: n, addresses: [`${a.podIP(n)}/24`, `${a.podIP6(n)}/64`] })),
  });
  return { ...a, lab, client: lab.client("cli"), client2: lab.client("cli2") };
}

/** Port `http` 80 → the pods' TCP port 8080, with a node port when one is given. */
export function httpPorts(nodePort?: number): PortSpec[] {
  return [{ name: "http", port: 80, targetPort: 8080, ...(nodePort ? { nodePort } : {}) }];
}

/** Port `dns` 53/UDP → the pods' UDP port 5353. */
export const DNS_PORTS: readonly PortSpec[] = [{ name: "dns", port: 53, targetPort: 5353, protocol: "UDP" }];

/** Options of {@link observeUdpEndpointSwap}. */
export interface UdpSwapOptions {
  readonly lab: ProxyLab;
  /** Where both UDP clients run. */
  readonly from: LabNetns;
  /** The node namespace (where conntrack is read). */
  readonly node: LabNetns;
  readonly objects: LiveServiceObjects;
  readonly proxier: Pick<Proxier, "sync">;
  /** The proxier's runner: the control service's conntrack deletions are suppressed through it. */
  readonly runner: RecordingCommandRunner;
  /** Cluster IP of Service `default/udp`, whose stale entries are deleted. */
  readonly tested: string;
  /** Cluster IP of Service `default/udpctl`, whose conntrack deletions are suppressed. */
  readonly control: string;
  /** The pod both services start on, and the one they move to. */
  readonly fromPod: { readonly name: string; readonly ip: string };
  readonly toPod: { readonly name: string; readonly ip: string };
  /** The node name endpoints run on; default `node-1`. */
  readonly nodeName?: string;
}

/** What {@link observeUdpEndpointSwap} saw. */
export interface UdpSwapObservation {
  /** The pods that answered each client before the swap. */
  readonly before: { readonly tested: string[]; readonly control: string[] };
  /** The DNAT targets of each service's conntrack entries before the swap. */
  readonly targetsBefore: { readonly tested: string[]; readonly control: string[] };
  /** The commit of the swap. */
  readonly commit: LiveCommit;
  /** The pods that answered each client after the swap (tested: from 300 ms after it). */
  readonly after: { readonly tested: string[]; readonly control: string[] };
  /** The DNAT targets after the swap. */
  readonly targetsAfter: { readonly tested: string[]; readonly control: string[] };
}

/**
 * Two UDP services on `fromPod` (`udp` at `tested`, `udpctl` at `control`), a long-lived UDP
 * client on each (source ports 40000 / 40001), then both services' endpoint replaced by
 * `toPod` in one partial sync, with the control service's conntrack deletion suppressed.
 * Waits until the tested client reaches `toPod`, then 1.5 s more, and reports what both
 * clients and conntrack saw; the suppression and the clients end in every case.
 *
 * @throws WorknodeError when replies do not come
 */
export async function observeUdpEndpointSwap(o: UdpSwapOptions): Promise<UdpSwapObservation> {
  const node = o.nodeName ?? "node-1";
  const on = (service: string, ip: string) =>
    slice({ ns: "default", service, ports: DNS_PORTS, endpoints: [{ ip, node } satisfies EpSpec] });
  o.runner.suppressConntrackFor.add(o.control);
  try {
    await o.objects.apply(
      {
        udp: svc({ ns: "default", name: "udp", clusterIP: o.tested, ports: DNS_PORTS }),
        udpctl: svc({ ns: "default", name: "udpctl", clusterIP: o.control, ports: DNS_PORTS }),
      },
      { udp: on("udp", o.fromPod.ip), udpctl: on("udpctl", o.fromPod.ip) },
      o.proxier,
    );
    const a = o.lab.udpStream(o.from, o.tested, 53, 40_000);
    const b = o.lab.udpStream(o.from, o.control, 53, 40_001);
    try {
      await waitFor("replies to both clients", () => a.replies.length >= 3 && b.replies.length >= 3);
      const before = { tested: a.replies.map((r) => r.from), control: b.replies.map((r) => r.from) };
      const targetsBefore = {
        tested: await udpConntrackTargets(o.node, o.tested),
        control: await udpConntrackTargets(o.node, o.control),
      };
      o.runner.conntrackCalls.length = 0;
      const commit = await o.objects.apply(
        {},
        { udp: on("udp", o.toPod.ip), udpctl: on("udpctl", o.toPod.ip) },
        o.proxier,
      );
      const syncedAt = Date.now();
      await waitFor(`the tested client to reach ${o.toPod.name}`, () =>
        a.replies.some((r) => r.at > syncedAt && r.from === o.toPod.name),
      );
      await sleep(1_500);
      return {
        before,
        targetsBefore,
        commit,
        after: {
          tested: a.replies.filter((r) => r.at > syncedAt + 300).map((r) => r.from),
          control: b.replies.filter((r) => r.at > syncedAt).map((r) => r.from),
        },
        targetsAfter: {
          tested: await udpConntrackTargets(o.node, o.tested),
          control: await udpConntrackTargets(o.node, o.control),
        },
      };
    } finally {
      await a.stop();
      await b.stop();
    }
  } finally {
    o.runner.suppressConntrackFor.delete(o.control);
  }
}
