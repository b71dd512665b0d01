import { bench, describe } from "vitest";
import { type EndpointSlice, LABEL_SERVICE_NAME } from "../src/kube/objects.js";
import { IndexedStore, indexByLabel, indexByNamespace } from "../src/sources/store.js";

function slice(i: number, rv: number): EndpointSlice {
  const ns = `ns-${i % 50}`;
  const service = `svc-${Math.floor(i / 2)}`;
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      namespace: ns,
      name: `${service}-${i % 2}`,
      resourceVersion: String(rv),
      labels: { [LABEL_SERVICE_NAME]: service },
    },
    addressType: "IPv4",
    endpoints: [
      { addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], conditions: { ready: true } },
    ],
  };
}

function newStore(): IndexedStore<EndpointSlice> {
  return new IndexedStore<EndpointSlice>({
    indexers: { namespace: indexByNamespace, service: indexByLabel(LABEL_SERVICE_NAME) },
  });
}

function filled(n: number): IndexedStore<EndpointSlice> {
  const store = newStore();
  for (let i = 0; i < n; i++) store.add(slice(i, 1));
  return store;
}

describe("IndexedStore.replace, 10k objects", () => {
  const unchanged = Array.from({ length: 10_000 }, (_, i) => slice(i, 1));
  const allNew = Array.from({ length: 10_000 }, (_, i) => slice(i, 2));
  // 10 % deleted, 10 % added, 10 % updated.
  const mixed = Array.from({ length: 10_000 }, (_, i) =>
    i % 10 === 0 ? slice(i + 10_000, 1) : slice(i, i % 10 === 1 ? 2 : 1),
  );
  let store = filled(10_000);
  let flip = false;

  bench(
    "relist, nothing changed",
    () => {
      store.replace(unchanged);
    },
    {
      setup: () => {
        store = filled(10_000);
      },
    },
  );

  bench(
    "relist, every object updated",
    () => {
      flip = !flip;
      store.replace(flip ? allNew : unchanged);
    },
    {
      setup: () => {
        store = filled(10_000);
      },
    },
  );

  bench(
    "relist, 10 % added / updated / deleted",
    () => {
      flip = !flip;
      store.replace(flip ? mixed : unchanged);
    },
    {
      setup: () => {
        store = filled(10_000);
      },
    },
  );

  bench("initial fill (replace into an empty store)", () => {
    newStore().replace(unchanged);
  });
});

describe("IndexedStore at 100k objects", () => {
  const store = filled(100_000);
  let rv = 2;
  let i = 0;

  bench("single update (label value changes)", () => {
    i = (i + 7919) % 100_000;
    const obj = slice(i, rv++);
    obj.metadata!.labels![LABEL_SERVICE_NAME] = `moved-${rv & 1}`;
    store.update(obj);
  });

  bench("single update (same index values)", () => {
    i = (i + 7919) % 100_000;
    store.update(slice(i, rv++));
  });

  bench("get by key", () => {
    i = (i + 7919) % 100_000;
    store.get(`ns-${i % 50}/svc-${Math.floor(i / 2)}-${i % 2}`);
  });

  bench("byIndex(service) lookup", () => {
    i = (i + 7919) % 100_000;
    store.byIndex("service", `ns-${i % 50}/svc-${Math.floor(i / 2)}`);
  });

  bench("byIndex(namespace) lookup (~2000 objects)", () => {
    i = (i + 1) % 50;
    store.byIndex("namespace", `ns-${i}`);
  });
});
