import { describe, expect, it } from "vitest";
import type { Service } from "../../src/kube/objects.js";
import { mergeWithPrevious, parseServicesFile } from "../../src/sources/services-file.js";

const svc = (name: string, extra = "") => `apiVersion: v1
kind: Service
metadata:
  name: ${name}${extra}
spec:
  clusterIP: 10.0.0.10
  ports:
  - port: 80
    targetPort: 8080
`;

const slice = (name: string, service: string) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: apps
  labels:
    kubernetes.io/service-name: ${service}
addressType: IPv4
endpoints:
- addresses: ["10.1.0.5"]
  conditions: {ready: true}
ports:
- port: 8080
  protocol: TCP
`;

describe("parseServicesFile", () => {
  it("reads Services and EndpointSlices, defaulting the namespace", () => {
    const out = parseServicesFile(`${svc("web")}---\n${slice("web-abc", "web")}`, "/etc/svc.yaml");
    expect(out.invalid).toEqual([]);
    expect(out.services).toHaveLength(1);
    expect(out.services[0]!.metadata).toEqual({ name: "web", namespace: "default" });
    expect(out.services[0]!.spec?.ports?.[0]).toEqual({ port: 80, targetPort: 8080 });
    expect(out.endpointSlices).toHaveLength(1);
    expect(out.endpointSlices[0]!.metadata?.namespace).toBe("apps");
    expect(out.hasUnattributedDocuments).toBe(false);
  });

  it("accepts headless and ExternalName Services without ports", () => {
    const text = `apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.org}
`;
    const out = parseServicesFile(text, "f.yaml");
    expect(out.invalid).toEqual([]);
    expect(out.services.map((s) => s.metadata?.name)).toEqual(["db", "ext"]);
  });

  it("reports every invalid document with the object and its origin, and keeps the valid ones", () => {
    const text = [
      svc("ok-one"), // document 1, line 1
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: [broken\n", // 2: syntax error
      "- just\n- a list\n", // 3: not a mapping
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n", // 4: unsupported kind
      "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {ports: [{port: 1}]}\n", // 5: no name
      "apiVersion: v1\nkind: Service\nmetadata: {name: noports}\nspec: {clusterIP: 10.0.0.3}\n", // 6: no ports
      "apiVersion: v2\nkind: Service\nmetadata: {name: badversion}\nspec: {ports: [{port: 1}]}\n", // 7
      svc("ok-one"), // 8: duplicate
      "apiVersion: v1\nkind: Service\nmetadata: {name: badport}\nspec: {ports: [{port: 70000, protocol: ICMP}]}\n", // 9
      slice("orphan", "x").replace("kubernetes.io/service-name: x", "app: x"), // 10: no service-name label
      svc("ok-two"), // 11
    ].join("---\n");
    const out = parseServicesFile(text, "/etc/svc.yaml");
    expect(out.services.map((s) => s.metadata?.name)).toEqual(["ok-one", "ok-two"]);
    const messages = out.invalid.map((e) => e.message);
    expect(messages).toHaveLength(9);
    expect(messages[0]).toMatch(
      /^invalid object <unnamed> \(\/etc\/svc\.yaml:\d+, document 2\): YAML syntax error/,
    );
    expect(messages[1]).toMatch(/document 3\).*document is a list, expected a mapping/);
    expect(messages[2]).toMatch(/ConfigMap cfg \(.*document 4\): unsupported kind "ConfigMap"/);
    expect(messages[3]).toMatch(/Service .*document 5\): metadata.name is missing/);
    expect(messages[4]).toMatch(/Service default\/noports \(.*document 6\): spec.ports is missing/);
    expect(messages[5]).toMatch(/Service default\/badversion .*unsupported apiVersion "v2"/);
    expect(messages[6]).toMatch(
      /Service default\/ok-one \(.*document 8\): duplicate Service default\/ok-one: already defined at \/etc\/svc\.yaml:1, document 1/,
    );
    expect(messages[7]).toMatch(
      /badport.*spec.ports\[0\]\.port must be an integer in 1-65535; spec.ports\[0\]\.protocol "ICMP"/,
    );
    expect(messages[8]).toMatch(/EndpointSlice apps\/orphan.*label kubernetes.io\/service-name is missing/);
    expect(out.invalid[5]!.object).toMatchObject({
      kind: "Service",
      namespace: "default",
      name: "badversion",
    });
    // documents that name their object are attributed; the others may hide anything
    expect([...out.rejectedServiceKeys].sort()).toEqual([
      "default/badport",
      "default/badversion",
      "default/noports",
    ]);
    expect([...out.rejectedEndpointSliceKeys]).toEqual(["apps/orphan"]);
    expect(out.hasUnattributedDocuments).toBe(true);
  });

  it("names the line of each document in origins", () => {
    const a = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"; // no spec
    const c = "apiVersion: v1\nkind: Service\nmetadata: {name: c}\n";
    const text = `# leading comment\n${a}---\n\n${svc("b")}---\n${c}`;
    const out = parseServicesFile(text, "s.yaml");
    // a starts after the comment (line 2); b spans lines 7-15; c starts on line 17
    expect(out.invalid.map((e) => e.object.origin)).toEqual([
      "s.yaml:2, document 1",
      "s.yaml:17, document 3",
    ]);
    expect(out.invalid[0]!.reasons[0]).toMatch(/spec is missing/);
  });

  it("expands Lists, naming the item in origins", () => {
    const text = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a}
  spec: {ports: [{port: 80}]}
- apiVersion: v1
  kind: Service
  metadata: {name: b}
  spec: {}
`;
    const out = parseServicesFile(text, "l.yaml");
    expect(out.services.map((s) => s.metadata?.name)).toEqual(["a"]);
    expect(out.invalid).toHaveLength(1);
    expect(out.invalid[0]!.object.origin).toBe("l.yaml:8, document 1, items[1]");
  });

  it("gives items of a typed list their kind", () => {
    const text = `apiVersion: discovery.k8s.io/v1
kind: EndpointSliceList
items:
- metadata: {name: s1, labels: {kubernetes.io/service-name: web}}
  addressType: IPv6
  endpoints: []
`;
    const out = parseServicesFile(text, "l.yaml");
    expect(out.invalid).toEqual([]);
    expect(out.endpointSlices[0]).toMatchObject({ kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1" });
  });

  it("reads YAML as Kubernetes does (1.1 octals, merge keys; timestamps stay strings)", () => {
    const text = `apiVersion: v1
kind: Service
metadata:
  name: web
  creationTimestamp: 2024-01-02T03:04:05Z
  annotations: {mode: "x"}
spec:
  ports:
  - &p {port: 80, protocol: TCP}
  - <<: *p
    port: 0100
    name: b
`;
    const out = parseServicesFile(text, "y.yaml");
    expect(out.invalid).toEqual([]);
    expect(out.services[0]!.metadata?.creationTimestamp).toBe("2024-01-02T03:04:05Z");
    expect(out.services[0]!.spec?.ports?.[1]).toEqual({ port: 64, protocol: "TCP", name: "b" });
  });

  it("treats an empty file as no objects", () => {
    const out = parseServicesFile("# nothing here\n", "e.yaml");
    expect(out).toMatchObject({
      services: [],
      endpointSlices: [],
      invalid: [],
      hasUnattributedDocuments: false,
    });
  });
});

describe("mergeWithPrevious", () => {
  const s = (name: string, port: number): Service => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "default" },
    spec: { ports: [{ port }] },
  });

  it("keeps the previous version of rejected objects and drops the others", () => {
    const merged = mergeWithPrevious(
      [s("a", 1), s("b", 1), s("c", 1)],
      [s("a", 2)],
      new Set(["default/b"]),
      false,
    );
    expect(merged.objects.map((o) => `${o.metadata?.name}:${o.spec?.ports?.[0]?.port}`)).toEqual([
      "a:2",
      "b:1",
    ]);
    expect(merged.kept).toEqual(["default/b"]);
  });

  it("keeps every missing object when asked to", () => {
    const merged = mergeWithPrevious([s("a", 1), s("c", 1)], [s("a", 2)], new Set(), true);
    expect(merged.objects.map((o) => o.metadata?.name)).toEqual(["a", "c"]);
    expect(merged.kept).toEqual(["default/c"]);
  });
});
