import type { Pod, Service } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { serviceEnvironment, serviceVariables } from "../../src/api-objects/service-env.js";

function svc(
  ns: string,
  name: string,
  ip: string,
  ports: Array<{ name?: string; port: number; protocol?: string }>,
): Service {
  return { metadata: { namespace: ns, name }, spec: { clusterIP: ip, ports } };
}

const pod = (ns: string, enableServiceLinks?: boolean): Pod => ({
  metadata: { name: "p", namespace: ns },
  spec: { containers: [], ...(enableServiceLinks === undefined ? {} : { enableServiceLinks }) },
});

describe("service environment variables", () => {
  it("builds kubelet's host/port and Docker link variables", () => {
    const vars = serviceVariables(
      svc("app", "my-db", "10.96.3.4", [
        { name: "sql", port: 5432 },
        { name: "metrics-http", port: 9187, protocol: "UDP" },
      ]),
    );
    expect(Object.fromEntries(vars.map((e) => [e.key, e.value]))).toEqual({
      MY_DB_SERVICE_HOST: "10.96.3.4",
      MY_DB_SERVICE_PORT: "5432",
      MY_DB_SERVICE_PORT_SQL: "5432",
      MY_DB_SERVICE_PORT_METRICS_HTTP: "9187",
      MY_DB_PORT: "tcp://10.96.3.4:5432",
      MY_DB_PORT_5432_TCP: "tcp://10.96.3.4:5432",
      MY_DB_PORT_5432_TCP_PROTO: "tcp",
      MY_DB_PORT_5432_TCP_PORT: "5432",
      MY_DB_PORT_5432_TCP_ADDR: "10.96.3.4",
      MY_DB_PORT_9187_UDP: "udp://10.96.3.4:9187",
      MY_DB_PORT_9187_UDP_PROTO: "udp",
      MY_DB_PORT_9187_UDP_PORT: "9187",
      MY_DB_PORT_9187_UDP_ADDR: "10.96.3.4",
    });
    expect(
      serviceVariables(svc("a", "v6", "fd00::1", [{ port: 80 }])).find((e) => e.key === "V6_PORT")?.value,
    ).toBe("tcp://[fd00::1]:80");
  });

  const services = [
    svc("default", "kubernetes", "10.96.0.1", [{ name: "https", port: 443 }]),
    svc("app", "web", "10.96.0.20", [{ port: 80 }]),
    svc("app", "headless", "None", [{ port: 80 }]),
    svc("other", "web2", "10.96.0.30", [{ port: 80 }]),
  ];

  it("takes the pod namespace's services with a cluster IP plus the default kubernetes Service", () => {
    const keys = serviceEnvironment(pod("app"), services).map((e) => e.key);
    expect(keys).toContain("KUBERNETES_SERVICE_HOST");
    expect(keys).toContain("WEB_SERVICE_HOST");
    expect(keys.some((k) => k.startsWith("HEADLESS_"))).toBe(false);
    expect(keys.some((k) => k.startsWith("WEB2_"))).toBe(false);
  });

  it("keeps only the kubernetes Service when enableServiceLinks is false", () => {
    const keys = serviceEnvironment(pod("app", false), services).map((e) => e.key);
    expect(keys.every((k) => k.startsWith("KUBERNETES_"))).toBe(true);
    expect(keys).toContain("KUBERNETES_PORT_443_TCP");
  });
});
