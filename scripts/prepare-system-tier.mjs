// Builds (or finds cached) everything the system tier needs before the tests start, without a test
// timeout over it: the Kubernetes control-plane binaries built with Go from the pinned modules
// (≈18 min cold on 2 cores, cached under /var/cache/worknode-testing afterwards).
import { ensureControlPlaneBinaries } from "@worknode/testing";

const t0 = Date.now();
const built = await ensureControlPlaneBinaries();
console.error(
  `==> control-plane binaries ${built.version} ready in ${built.dir} (${Math.round((Date.now() - t0) / 1000)} s)`,
);
