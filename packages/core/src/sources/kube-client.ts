/**
 * A minimal Kubernetes API HTTP client: streaming list and watch requests, and
 * JSON reads and writes (create, update, patch, delete).
 *
 * `@kubernetes/client-node` is used only for configuration and authentication
 * (`KubeConfig`: CA, client certificate and key, bearer token, exec and auth-provider
 * plugins, proxies); requests go through `node:https` / `node:http` so that
 * response bodies can be streamed and every request can be aborted.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import * as http from "node:http";
import * as https from "node:https";
import { createGunzip } from "node:zlib";
import type { KubeConfig } from "@kubernetes/client-node";
import { AbortedError, ApiStatusError, ConfigError, UnavailableError } from "../util/errors.js";

/** Describes one API resource (what `kubectl api-resources` prints). */
export interface KubeResource {
  /** API group; `""` for the core group. */
  readonly group: string;
  /** API version, such as `v1`. */
  readonly version: string;
  /** Plural resource name used in URLs, such as `services`. */
  readonly plural: string;
  /** Kind of the objects, such as `Service`. */
  readonly kind: string;
  /** True for namespaced resources. */
  readonly namespaced: boolean;
}

/** Resources worknode components watch. */
export const KUBE_RESOURCES = {
  /** core/v1 Services. */
  services: { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
  /** discovery.k8s.io/v1 EndpointSlices. */
  endpointSlices: {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    kind: "EndpointSlice",
    namespaced: true,
  },
  /** core/v1 Pods. */
  pods: { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true },
  /** core/v1 Nodes. */
  nodes: { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false },
  /** core/v1 ConfigMaps. */
  configMaps: { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true },
  /** core/v1 Secrets. */
  secrets: { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true },
} as const satisfies Record<string, KubeResource>;

/** The `apiVersion` of a resource's objects: `v1` or `group/version`. */
export function resourceApiVersion(resource: KubeResource): string {
  return resource.group ? `${resource.group}/${resource.version}` : resource.version;
}

/**
 * The URL path of a resource collection, such as `/api/v1/namespaces/default/services`
 * or `/apis/discovery.k8s.io/v1/endpointslices` (all namespaces).
 * @throws ConfigError when a namespace is given for a cluster-scoped resource
 */
export function resourcePath(resource: KubeResource, namespace?: string): string {
  const base = resource.group ? `/apis/${resource.group}/${resource.version}` : `/api/${resource.version}`;
  if (namespace) {
    if (!resource.namespaced) {
      throw new ConfigError(`resource ${resource.plural} is cluster-scoped; no namespace may be given`);
    }
    return `${base}/namespaces/${encodeURIComponent(namespace)}/${resource.plural}`;
  }
  return `${base}/${resource.plural}`;
}

/** A short label naming a resource in logs and metrics, such as `discovery.k8s.io/v1/endpointslices`. */
export function resourceLabel(resource: KubeResource): string {
  return `${resource.group || "core"}/${resource.version}/${resource.plural}`;
}

/** Query parameters; `undefined` values are left out. */
export type QueryParams = Readonly<Record<string, string | number | boolean | undefined>>;

/** Options of {@link KubeApiClient.get}. */
export interface KubeRequestOptions {
  /** Aborts the request (and its response body). */
  readonly signal?: AbortSignal;
  /** Asks for a gzip-compressed body and decompresses it transparently (for large lists). */
  readonly acceptGzip?: boolean;
}

/** HTTP methods of {@link KubeApiClient.request}. */
export type KubeHttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/**
 * Content types of a PATCH body: JSON merge patch, strategic merge patch,
 * JSON patch, or server-side apply.
 */
export type KubePatchType =
  | "application/merge-patch+json"
  | "application/strategic-merge-patch+json"
  | "application/json-patch+json"
  | "application/apply-patch+yaml";

/** Options of {@link KubeApiClient.request} and {@link KubeApiClient.requestJson}. */
export interface KubeWriteOptions extends KubeRequestOptions {
  /** Query parameters. */
  readonly query?: QueryParams;
  /** Request body, sent as JSON (objects) or as is (strings / buffers). */
  readonly body?: unknown;
  /** Body content type; default `application/json` (set a {@link KubePatchType} for PATCH). */
  readonly contentType?: string;
}

/** A successful (2xx) streaming response. Consume or destroy `body`. */
export interface KubeResponse {
  /** HTTP status code. */
  readonly status: number;
  /** Response headers. */
  readonly headers: http.IncomingHttpHeaders;
  /** The (decompressed) body stream. */
  readonly body: AsyncIterable<Buffer> & { destroy(error?: Error): void };
}

/** Options of a {@link KubeApiClient}. */
export interface KubeApiClientOptions {
  /** `User-Agent` header; default `worknode`. */
  readonly userAgent?: string;
  /** Cap on the body read from an error response; default 64 KiB. */
  readonly maxErrorBodyBytes?: number;
}

/** A `Status` object as returned by the API server on errors and in watch `ERROR` events. */
export interface KubeStatus {
  kind?: string;
  apiVersion?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

/**
 * Builds an {@link ApiStatusError} from an HTTP status and a decoded `Status` object
 * (or a non-Status body, reported as text).
 */
export function apiStatusError(httpStatus: number, body: unknown, context: string): ApiStatusError {
  const status = isKubeStatus(body) ? body : undefined;
  const code = typeof status?.code === "number" && status.code > 0 ? status.code : httpStatus;
  const reason = typeof status?.reason === "string" && status.reason ? status.reason : undefined;
  const detail =
    typeof status?.message === "string" && status.message
      ? status.message
      : typeof body === "string" && body
        ? body.slice(0, 300)
        : (http.STATUS_CODES[code] ?? "error");
  return new ApiStatusError(code, reason, `${context}: ${code}${reason ? ` ${reason}` : ""}: ${detail}`);
}

/** True when `value` looks like a Kubernetes `Status` object. */
export function isKubeStatus(value: unknown): value is KubeStatus {
  return typeof value === "object" && value !== null && (value as KubeStatus).kind === "Status";
}

/**
 * True when an error means the requested resourceVersion (or continue token) is no
 * longer available: HTTP 410 Gone, reason `Expired` / `Gone`, or a "too old resource
 * version" message. The remedy is a fresh list.
 */
export function isResourceExpired(err: unknown): boolean {
  if (!(err instanceof ApiStatusError)) return false;
  if (err.status === 410 || err.reason === "Expired" || err.reason === "Gone") return true;
  return /too old resource version/i.test(err.message);
}

/**
 * Issues requests against the API server of a `KubeConfig`'s current context,
 * applying its TLS settings and credentials afresh for every request (so rotated
 * certificates and refreshed exec-plugin tokens are picked up).
 */
export class KubeApiClient {
  /** The server URL of the current cluster, such as `https://10.0.0.1:6443`. */
  readonly server: string;
  private readonly base: URL;
  private readonly authConfig: KubeConfig;
  private readonly userAgent: string;
  private readonly maxErrorBodyBytes: number;

  /** @throws ConfigError when the config has no current cluster or an invalid server URL */
  constructor(kubeConfig: KubeConfig, options: KubeApiClientOptions = {}) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new ConfigError("kubeconfig has no current cluster");
    let base: URL;
    try {
      base = new URL(cluster.server);
    } catch (err) {
      throw new ConfigError(`kubeconfig cluster ${cluster.name}: invalid server URL "${cluster.server}"`, {
        cause: err,
      });
    }
    if (base.protocol !== "https:" && base.protocol !== "http:") {
      throw new ConfigError(`kubeconfig cluster ${cluster.name}: unsupported server URL "${cluster.server}"`);
    }
    this.server = cluster.server;
    this.base = base;
    this.userAgent = options.userAgent ?? "worknode";
    this.maxErrorBodyBytes = options.maxErrorBodyBytes ?? 64 * 1024;
    // client-node refuses plain-http clusters unless skipTLSVerify is set (TLS settings mean nothing
    // there). Like kubectl, accept them: authenticate through a view of the same config (sharing its
    // authenticators and token caches) whose current cluster says so.
    if (base.protocol === "http:" && !cluster.skipTLSVerify) {
      const view = Object.create(kubeConfig) as KubeConfig;
      const plain = { ...cluster, skipTLSVerify: true };
      view.getCurrentCluster = () => plain;
      this.authConfig = view;
    } else {
      this.authConfig = kubeConfig;
    }
  }

  /** The full URL of an API path with query parameters. */
  url(path: string, query: QueryParams = {}): URL {
    const url = new URL(this.base.href);
    url.pathname = url.pathname.replace(/\/+$/, "") + path;
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  /**
   * Sends a GET request and resolves with the streaming body once a 2xx status arrived.
   * @throws ApiStatusError on a non-2xx status (with the `Status` reason)
   * @throws UnavailableError when the server cannot be reached or authentication cannot be prepared
   * @throws AbortedError when the signal aborts
   */
  async get(path: string, query: QueryParams, options: KubeRequestOptions = {}): Promise<KubeResponse> {
    return this.request("GET", path, { ...options, query });
  }

  /**
   * Sends a request with any method and an optional body, and resolves with the
   * streaming body once a 2xx status arrived.
   * @throws ApiStatusError on a non-2xx status (with the `Status` reason)
   * @throws UnavailableError when the server cannot be reached or authentication cannot be prepared
   * @throws AbortedError when the signal aborts
   */
  async request(method: KubeHttpMethod, path: string, options: KubeWriteOptions = {}): Promise<KubeResponse> {
    const { signal } = options;
    const url = this.url(path, options.query ?? {});
    const what = `${method} ${url.pathname}`;
    if (signal?.aborted) throw new AbortedError(`${what} aborted`, { cause: signal.reason });
    const payload = encodeBody(options.body);
    const opts: https.RequestOptions = {
      method,
      headers: {
        Accept: "application/json",
        "User-Agent": this.userAgent,
        ...(options.acceptGzip ? { "Accept-Encoding": "gzip" } : {}),
        ...(payload
          ? {
              "Content-Type": options.contentType ?? "application/json",
              "Content-Length": String(payload.length),
            }
          : {}),
      },
    };
    try {
      // An exec plugin may take its time; stop waiting for it when aborted.
      await raceAbort(this.authConfig.applyToHTTPSOptions(opts), signal);
    } catch (err) {
      if (signal?.aborted) {
        destroyAgent(opts.agent);
        throw new AbortedError(`${what} aborted`, { cause: signal.reason });
      }
      throw new UnavailableError(this.server, `${what}: cannot prepare credentials: ${errorText(err)}`, {
        cause: err,
      });
    }
    if (signal?.aborted) {
      destroyAgent(opts.agent);
      throw new AbortedError(`${what} aborted`, { cause: signal.reason });
    }
    const transport = url.protocol === "https:" ? https : http;
    const agent = opts.agent;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      let settled = false;
      const req = transport.request(url, { ...opts, signal });
      req.on("error", (err) => {
        if (settled) return; // errors after the response surface through the body stream
        settled = true;
        destroyAgent(agent);
        reject(
          signal?.aborted
            ? new AbortedError(`${what} aborted`, { cause: signal.reason })
            : new UnavailableError(this.server, `${what}: ${errorText(err)}`, { cause: err }),
        );
      });
      req.on("response", (r) => {
        settled = true;
        r.once("close", () => destroyAgent(agent));
        resolve(r);
      });
      req.end(payload);
    });
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) {
      const text = await readCapped(res, this.maxErrorBodyBytes).catch(() => "");
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: reported as text
      }
      throw apiStatusError(status, body, what);
    }
    const gzip = options.acceptGzip && res.headers["content-encoding"] === "gzip";
    const body = gzip ? res.pipe(createGunzip()) : res;
    if (gzip) {
      res.on("error", (err) => body.destroy(err));
      body.on("close", () => res.destroy());
    }
    return { status, headers: res.headers, body };
  }

  /**
   * Sends a request (see {@link KubeApiClient.request}) and resolves with the
   * decoded JSON response body (`undefined` for an empty body).
   * @throws ApiStatusError on a non-2xx status
   * @throws UnavailableError when the server cannot be reached or the body is not JSON
   * @throws AbortedError when the signal aborts
   */
  async requestJson<T>(method: KubeHttpMethod, path: string, options: KubeWriteOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of res.body) chunks.push(chunk);
    } catch (err) {
      if (options.signal?.aborted) throw new AbortedError(`${method} ${path} aborted`, { cause: err });
      throw new UnavailableError(this.server, `${method} ${path}: ${errorText(err)}`, { cause: err });
    }
    const text = Buffer.concat(chunks).toString("utf8");
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new UnavailableError(this.server, `${method} ${path}: response is not JSON`, { cause: err });
    }
  }
}

function encodeBody(body: unknown): Buffer | undefined {
  if (body === undefined) return undefined;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === "string") return Buffer.from(body, "utf8");
  return Buffer.from(JSON.stringify(body), "utf8");
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

function destroyAgent(agent: https.RequestOptions["agent"]): void {
  if (agent && typeof agent === "object" && typeof agent.destroy === "function") agent.destroy();
}

async function readCapped(res: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (size < max) chunks.push(chunk.subarray(0, max - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks).toString("utf8");
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
