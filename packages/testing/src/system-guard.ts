/**
 * Vitest global setup of the `system` tier: the tier runs against real
 * components and needs root on Linux. Anywhere else it fails loudly instead
 * of skipping.
 */
export default function systemGuard(): void {
  if (process.platform !== "linux") {
    throw new Error(
      `the system test tier needs Linux (this is ${process.platform}); run the unit tier instead`,
    );
  }
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new Error("the system test tier needs root (real containerd, iptables, nftables, namespaces)");
  }
}
