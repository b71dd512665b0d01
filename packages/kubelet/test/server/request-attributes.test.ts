import { describe, expect, it } from "vitest";
import {
  apiVerbForMethod,
  forbiddenMessage,
  isSubpath,
  nodeRequestAttributes,
  subresourcesForPath,
} from "../../src/server/auth/request-attributes.js";

const user = { username: "alice", groups: ["dev", "system:authenticated"] };

describe("kubelet request attributes", () => {
  it("maps HTTP methods to API verbs as kubelet does", () => {
    expect(apiVerbForMethod("GET")).toBe("get");
    expect(apiVerbForMethod("POST")).toBe("create");
    expect(apiVerbForMethod("PUT")).toBe("update");
    expect(apiVerbForMethod("PATCH")).toBe("patch");
    expect(apiVerbForMethod("DELETE")).toBe("delete");
    expect(apiVerbForMethod("HEAD")).toBe("");
    expect(apiVerbForMethod("OPTIONS")).toBe("");
  });

  it("matches subpaths on segment boundaries only", () => {
    expect(isSubpath("/stats", "/stats/")).toBe(true);
    expect(isSubpath("/stats/summary", "/stats/")).toBe(true);
    expect(isSubpath("/statsx", "/stats/")).toBe(false);
    expect(isSubpath("/metrics", "/metrics")).toBe(true);
    expect(isSubpath("/metrics/resource", "/metrics")).toBe(true);
    expect(isSubpath("/metricsfoo", "/metrics")).toBe(false);
  });

  it.each([
    ["/stats/summary", ["stats"]],
    ["/stats", ["stats"]],
    ["/metrics", ["metrics"]],
    ["/metrics/cadvisor", ["metrics"]],
    ["/metrics/resource", ["metrics"]],
    ["/metrics/probes", ["metrics"]],
    ["/logs/", ["log"]],
    ["/logs/syslog", ["log"]],
    ["/checkpoint/ns/pod/c", ["checkpoint"]],
    ["/statusz", ["statusz"]],
    ["/flagz", ["configz"]],
    ["/configz", ["configz", "proxy"]],
    ["/pods", ["pods", "proxy"]],
    ["/pods/", ["pods", "proxy"]],
    ["/runningpods/", ["pods", "proxy"]],
    ["/healthz", ["healthz", "proxy"]],
    ["/healthz/ping", ["healthz", "proxy"]],
    ["/exec/ns/pod/c", ["proxy"]],
    ["/attach/ns/pod/c", ["proxy"]],
    ["/portForward/ns/pod", ["proxy"]],
    ["/containerLogs/ns/pod/c", ["proxy"]],
    ["/run/ns/pod/c", ["proxy"]],
    ["/spec/", ["proxy"]],
    ["/podsx", ["proxy"]],
    ["/", ["proxy"]],
  ])("%s → %j", (path, subresources) => {
    expect(subresourcesForPath(path)).toEqual(subresources);
  });

  it("builds nodes attributes named after the node", () => {
    const attrs = nodeRequestAttributes(user, "POST", "/exec/default/web/app", "node-1");
    expect(attrs).toEqual([
      {
        user,
        verb: "create",
        resource: "nodes",
        apiVersion: "v1",
        name: "node-1",
        subresource: "proxy",
        path: "/exec/default/web/app",
      },
    ]);
    const pods = nodeRequestAttributes(user, "GET", "/pods", "node-1");
    expect(pods.map((a) => [a.verb, a.subresource])).toEqual([
      ["get", "pods"],
      ["get", "proxy"],
    ]);
  });

  it("words the 403 like kubelet", () => {
    const attrs = nodeRequestAttributes(user, "GET", "/pods", "node-1");
    expect(forbiddenMessage(attrs)).toBe(
      "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n",
    );
    expect(forbiddenMessage(nodeRequestAttributes(user, "GET", "/stats/summary", "n"))).toBe(
      "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[stats])\n",
    );
  });
});
