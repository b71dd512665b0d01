/**
 * kubelet's request-attribute mapping (`nodeAuthorizerAttributesGetter`):
 * every request to the kubelet API is authorized as a request on the
 * `nodes` resource named after the node, with
 *
 * - the verb from the HTTP method (GET → get, POST → create, PUT → update,
 *   PATCH → patch, DELETE → delete);
 * - the subresource from the path: `/stats/*` → `stats`, `/metrics/*` →
 *   `metrics`, `/logs/*` → `log`, `/checkpoint/*` → `checkpoint`, `/statusz`
 *   → `statusz`, `/flagz` → `configz`, everything else (`/pods`, `/exec`,
 *   `/attach`, `/portForward`, `/containerLogs`, `/run`, `/healthz` …) →
 *   `proxy`;
 * - with fine-grained kubelet authorization (`KubeletFineGrainedAuthz`, GA
 *   and locked on since Kubernetes 1.36) a more specific subresource is tried
 *   first for `/pods` and `/runningpods/` (`pods`), `/healthz` (`healthz`) and
 *   `/configz` (`configz`); the request is allowed when any one is.
 *
 * @module
 */
import type { UserInfo } from "./user-info.js";

/** The resource attributes of one authorization check (a SubjectAccessReview's `resourceAttributes`). */
export interface NodeRequestAttributes {
  readonly user: UserInfo;
  /** API verb: `get`, `create`, `update`, `patch`, `delete` (empty for other methods). */
  readonly verb: string;
  /** Always `nodes`. */
  readonly resource: "nodes";
  /** Always `v1` (core group). */
  readonly apiVersion: "v1";
  /** The node name. */
  readonly name: string;
  /** `stats`, `metrics`, `log`, `proxy`, `pods`, `healthz`, `configz`, `checkpoint` or `statusz`. */
  readonly subresource: string;
  /** The request path. */
  readonly path: string;
}

/** The API verb of an HTTP method, as kubelet maps it; empty for methods it does not map. */
export function apiVerbForMethod(method: string): string {
  switch (method.toUpperCase()) {
    case "GET":
      return "get";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return "delete";
    default:
      return "";
  }
}

/** Whether `subpath` is `path` or below it (`path` with or without a trailing slash). */
export function isSubpath(subpath: string, path: string): boolean {
  const p = path.endsWith("/") ? path.slice(0, -1) : path;
  return subpath === p || (subpath.startsWith(p) && subpath[p.length] === "/");
}

/** The subresources a path is checked against, most specific first (see the module notes). */
export function subresourcesForPath(path: string): string[] {
  const out: string[] = [];
  if (isSubpath(path, "/pods")) out.push("pods");
  else if (isSubpath(path, "/healthz")) out.push("healthz");
  else if (isSubpath(path, "/configz")) out.push("configz");
  else if (isSubpath(path, "/runningpods/")) out.push("pods");

  if (isSubpath(path, "/stats/")) out.push("stats");
  else if (isSubpath(path, "/metrics")) out.push("metrics");
  else if (isSubpath(path, "/logs/")) out.push("log");
  else if (isSubpath(path, "/checkpoint")) out.push("checkpoint");
  else if (isSubpath(path, "/statusz")) out.push("statusz");
  else if (isSubpath(path, "/flagz")) out.push("configz");
  else out.push("proxy");
  return out;
}

/**
 * The attributes a request is authorized with, most specific first; the
 * request is allowed when any of them is.
 */
export function nodeRequestAttributes(
  user: UserInfo,
  method: string,
  path: string,
  nodeName: string,
): NodeRequestAttributes[] {
  const verb = apiVerbForMethod(method);
  return subresourcesForPath(path).map((subresource) => ({
    user,
    verb,
    resource: "nodes",
    apiVersion: "v1",
    name: nodeName,
    subresource,
    path,
  }));
}

/** kubelet's 403 body: `Forbidden (user=…, verb=…, resource=nodes, subresource(s)=[…])`. */
export function forbiddenMessage(attrs: readonly NodeRequestAttributes[]): string {
  const first = attrs[0];
  if (!first) return "Authorization error: could not determine attributes for request";
  const subs = attrs.map((a) => a.subresource).join(" ");
  return `Forbidden (user=${first.user.username}, verb=${first.verb}, resource=${first.resource}, subresource(s)=[${subs}])\n`;
}
