/**
 * A fake Kubernetes API server for unit tests of the informer: list (with
 * pagination), watch (chunked JSON lines, bookmarks, `410 Expired` for a
 * compacted resourceVersion) and controls to break things on purpose.
 *
 * It keeps one global resourceVersion counter and an event history per
 * server, like etcd; a watch from resourceVersion `r` replays every event
 * after `r` and then streams live events.
 */
import { randomUUID } from "node:crypto";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { gzipSync } from "node:zlib";
import { KubeConfig } from "@kubernetes/client-node";
import type { KubeObject } from "../../src/kube/objects.js";
import type { KubeResource } from "../../src/sources/kube-client.js";

/** A request the server received. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly kind: "list" | "watch" | "other";
  readonly headers: http.IncomingHttpHeaders;
  /** Subject CN of the TLS client certificate, if one was presented. */
  readonly clientCertCN?: string;
}

/** Options of {@link FakeApiServer.start}. */
export interface FakeApiServerOptions {
  /** Resources served; default core/v1 services. */
  readonly resources?: readonly KubeResource[];
  /** When set, every request must carry `Authorization: Bearer <token>` (else 401). */
  readonly token?: string;
  /** Serve HTTPS with these PEM credentials; `ca` + `requestCert` demand a client certificate. */
  readonly tls?: { key: string; cert: string; ca?: string; requestCert?: boolean };
  /** Gzip list responses when the client accepts it. */
  readonly gzipLists?: boolean;
}

/** How {@link FakeApiServer.failNext} fails a request. */
export interface FailureSpec {
  /** HTTP status; default 500. */
  readonly status?: number;
  /** Status reason; default derived from the status. */
  readonly reason?: string;
  /** Status message. */
  readonly message?: string;
  /** Which requests to fail (`continue`: list pages after the first); default any. */
  readonly on?: "list" | "continue" | "watch" | "any";
  /** Never answer (the request hangs) instead of answering with an error. */
  readonly hang?: boolean;
}

interface HistoryEvent {
  readonly rv: number;
  readonly resource: string;
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly obj: KubeObject;
  readonly prev: KubeObject | undefined;
}

interface ActiveWatch {
  readonly id: number;
  readonly resource: KubeResource;
  readonly namespace: string | undefined;
  readonly match: (obj: KubeObject) => boolean;
  readonly bookmarks: boolean;
  readonly res: http.ServerResponse;
  readonly socket: Socket;
  hung: boolean;
  cutMidEvent: boolean;
  closed: boolean;
}

interface ListSnapshot {
  readonly rv: number;
  readonly items: KubeObject[];
}

const GONE = {
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  reason: "Expired",
  code: 410,
};

/** See the module comment. Create with {@link FakeApiServer.start}. */
export class FakeApiServer {
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  private readonly resources: Map<string, KubeResource>;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: HistoryEvent[] = [];
  private readonly watches = new Set<ActiveWatch>();
  private readonly snapshots = new Map<string, ListSnapshot>();
  private readonly failures: FailureSpec[] = [];
  private readonly hungResponses = new Set<http.ServerResponse>();
  private rv = 1000;
  private compactedRv = 0;
  private nextId = 1;
  private server!: http.Server;
  private baseUrl = "";

  private constructor(private readonly options: FakeApiServerOptions) {
    const list = options.resources ?? [
      { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
    ];
    this.resources = new Map(list.map((r) => [r.plural, r]));
    for (const r of list) this.objects.set(r.plural, new Map());
  }

  /** Starts a server on 127.0.0.1 with a free port. */
  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(options);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => s.handle(req, res);
    s.server = options.tls
      ? https.createServer(
          {
            key: options.tls.key,
            cert: options.tls.cert,
            ...(options.tls.ca ? { ca: options.tls.ca } : {}),
            requestCert: options.tls.requestCert ?? false,
            rejectUnauthorized: options.tls.requestCert ?? false,
          },
          handler,
        )
      : http.createServer(handler);
    await new Promise<void>((resolve) => s.server.listen(0, "127.0.0.1", resolve));
    const port = (s.server.address() as AddressInfo).port;
    s.baseUrl = `${options.tls ? "https" : "http"}://127.0.0.1:${port}`;
    return s;
  }

  /** Base URL, such as `http://127.0.0.1:40123`. */
  get url(): string {
    return this.baseUrl;
  }

  /**
   * A KubeConfig pointing at this server.
   * @param user user entry (token, certData/keyData, exec …); default: the server's token, if any
   * @param cluster extra cluster fields (such as `caData`)
   */
  kubeConfig(user: Record<string, unknown> = {}, cluster: Record<string, unknown> = {}): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: this.baseUrl, skipTLSVerify: false, ...cluster }],
      users: [{ name: "tester", ...(this.options.token ? { token: this.options.token } : {}), ...user }],
      contexts: [{ name: "fake", cluster: "fake", user: "tester" }],
      currentContext: "fake",
    });
    return kc;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Requests of one kind. */
  requestsOf(kind: "list" | "watch"): RecordedRequest[] {
    return this.requests.filter((r) => r.kind === kind);
  }

  /** Number of open watch streams (hung ones included). */
  activeWatches(): number {
    let n = 0;
    for (const w of this.watches) if (!w.closed) n++;
    return n;
  }

  /** Objects of a resource, in insertion order. */
  list(plural: string): KubeObject[] {
    return [...this.store(plural).values()];
  }

  /** Creates an object (namespace `default` when namespaced and not given); returns the stored copy. */
  add<T extends KubeObject>(plural: string, obj: T): T {
    const resource = this.resource(plural);
    const copy = structuredClone(obj);
    copy.apiVersion = resource.group ? `${resource.group}/${resource.version}` : resource.version;
    copy.kind = resource.kind;
    copy.metadata = { ...copy.metadata };
    if (resource.namespaced) copy.metadata.namespace ??= "default";
    copy.metadata.uid ??= randomUUID();
    copy.metadata.creationTimestamp ??= new Date(0).toISOString();
    const key = keyOf(copy);
    const store = this.store(plural);
    if (store.has(key)) throw new Error(`fake apiserver: ${plural} ${key} exists`);
    copy.metadata.resourceVersion = String(++this.rv);
    store.set(key, copy);
    this.record({ rv: this.rv, resource: plural, type: "ADDED", obj: copy, prev: undefined });
    return structuredClone(copy);
  }

  /** Replaces an existing object (matched by namespace/name, keeping its uid); returns the stored copy. */
  modify<T extends KubeObject>(plural: string, obj: T): T {
    const resource = this.resource(plural);
    const store = this.store(plural);
    const probe = structuredClone(obj);
    probe.metadata = { ...probe.metadata };
    if (resource.namespaced) probe.metadata.namespace ??= "default";
    const key = keyOf(probe);
    const prev = store.get(key);
    if (!prev) throw new Error(`fake apiserver: ${plural} ${key} does not exist`);
    const copy: T = {
      ...probe,
      apiVersion: prev.apiVersion,
      kind: prev.kind,
      metadata: { ...probe.metadata, uid: prev.metadata?.uid, resourceVersion: String(++this.rv) },
    };
    store.set(key, copy);
    this.record({ rv: this.rv, resource: plural, type: "MODIFIED", obj: copy, prev });
    return structuredClone(copy);
  }

  /** Deletes an object by `namespace/name` key. */
  remove(plural: string, key: string): void {
    const store = this.store(plural);
    const prev = store.get(key);
    if (!prev) throw new Error(`fake apiserver: ${plural} ${key} does not exist`);
    store.delete(key);
    const obj = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(++this.rv) } };
    this.record({ rv: this.rv, resource: plural, type: "DELETED", obj, prev });
  }

  /**
   * Forgets all history up to now: watches from an older resourceVersion get a
   * `410 Expired` ERROR event, and list continue tokens expire.
   */
  compact(): void {
    this.compactedRv = this.rv;
    this.history.length = 0;
    this.snapshots.clear();
  }

  /** Makes the next `count` matching requests fail (or hang). */
  failNext(count = 1, spec: FailureSpec = {}): void {
    for (let i = 0; i < count; i++) this.failures.push(spec);
  }

  /**
   * Cuts every open watch connection: `"now"` destroys the sockets at once;
   * `"mid-event"` destroys each one after writing half of its next event.
   */
  cutWatches(mode: "now" | "mid-event" = "now"): void {
    for (const w of this.watches) {
      if (w.closed) continue;
      if (mode === "now") this.destroyWatch(w);
      else w.cutMidEvent = true;
    }
  }

  /** Ends every open watch cleanly, as the server does when `timeoutSeconds` elapse. */
  endWatches(): void {
    for (const w of this.watches) {
      if (w.closed) continue;
      w.closed = true;
      this.watches.delete(w);
      w.res.end();
    }
  }

  /** Open watches stop receiving anything but stay connected (a half-dead server). */
  hangWatches(): void {
    for (const w of this.watches) w.hung = true;
  }

  /** Sends a BOOKMARK at the current resourceVersion to the open watches that allow bookmarks. */
  bookmark(plural?: string): void {
    for (const w of this.watches) {
      if (w.closed || w.hung || !w.bookmarks || (plural && w.resource.plural !== plural)) continue;
      this.write(w, {
        type: "BOOKMARK",
        object: {
          kind: w.resource.kind,
          apiVersion: apiVersionOf(w.resource),
          metadata: { resourceVersion: String(this.rv) },
        },
      });
    }
  }

  /** Sends an ERROR event with a Status to the open watches, then ends them (as the real server does). */
  errorEvent(status: { code: number; reason?: string; message?: string }): void {
    for (const w of this.watches) {
      if (w.closed || w.hung) continue;
      this.write(w, {
        type: "ERROR",
        object: { kind: "Status", apiVersion: "v1", status: "Failure", ...status },
      });
      if (!w.closed) {
        w.closed = true;
        this.watches.delete(w);
        w.res.end();
      }
    }
  }

  /** Writes raw bytes to the open watches (to feed the decoder garbage). */
  sendRaw(text: string): void {
    for (const w of this.watches) if (!w.closed && !w.hung) w.res.write(text);
  }

  /** Number of open TCP connections to the server. */
  connections(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
    );
  }

  /** Stops the server and drops every connection. */
  async close(): Promise<void> {
    for (const w of this.watches) this.destroyWatch(w);
    for (const res of this.hungResponses) res.socket?.destroy();
    this.hungResponses.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------------------

  private resource(plural: string): KubeResource {
    const r = this.resources.get(plural);
    if (!r) throw new Error(`fake apiserver: unknown resource ${plural}`);
    return r;
  }

  private store(plural: string): Map<string, KubeObject> {
    this.resource(plural);
    return this.objects.get(plural)!;
  }

  private record(event: HistoryEvent): void {
    this.history.push(event);
    for (const w of this.watches) if (w.resource.plural === event.resource) this.deliver(w, event);
  }

  private deliver(w: ActiveWatch, event: HistoryEvent): void {
    if (w.closed || w.hung) return;
    if (w.namespace && event.obj.metadata?.namespace !== w.namespace) return;
    const now = event.type !== "DELETED" && w.match(event.obj);
    const before = event.prev !== undefined && w.match(event.prev);
    let type: string;
    let object: KubeObject;
    if (event.type === "DELETED") {
      if (!before) return;
      type = "DELETED";
      object = event.obj;
    } else if (now && before) {
      type = "MODIFIED";
      object = event.obj;
    } else if (now) {
      type = "ADDED";
      object = event.obj;
    } else if (before) {
      // The object stopped matching the selector: to this watcher it is gone.
      type = "DELETED";
      object = event.obj;
    } else {
      return;
    }
    this.write(w, { type, object });
  }

  private write(w: ActiveWatch, event: unknown): void {
    const line = `${JSON.stringify(event)}\n`;
    if (w.cutMidEvent) {
      const bytes = Buffer.from(line);
      w.res.write(bytes.subarray(0, Math.max(1, bytes.length >> 1)), () => this.destroyWatch(w));
      w.closed = true;
      this.watches.delete(w);
      return;
    }
    w.res.write(line);
  }

  private destroyWatch(w: ActiveWatch): void {
    w.closed = true;
    this.watches.delete(w);
    w.socket.destroy();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://fake");
    const watch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
    const peer = (req.socket as { getPeerCertificate?: () => { subject?: { CN?: string } } })
      .getPeerCertificate;
    const cn = peer ? peer.call(req.socket)?.subject?.CN : undefined;
    const route = this.route(url.pathname);
    this.requests.push({
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.searchParams,
      kind: route ? (watch ? "watch" : "list") : "other",
      headers: req.headers,
      ...(cn ? { clientCertCN: cn } : {}),
    });
    if (this.options.token && req.headers.authorization !== `Bearer ${this.options.token}`) {
      this.sendStatus(res, 401, "Unauthorized", "Unauthorized");
      return;
    }
    if (!route) {
      this.sendStatus(
        res,
        404,
        "NotFound",
        `the server could not find the requested resource (${url.pathname})`,
      );
      return;
    }
    const kind = watch ? "watch" : url.searchParams.has("continue") ? "continue" : "list";
    const failureIndex = this.failures.findIndex(
      (f) => (f.on ?? "any") === "any" || f.on === kind || (f.on === "list" && kind === "continue"),
    );
    if (failureIndex >= 0) {
      const f = this.failures.splice(failureIndex, 1)[0]!;
      if (f.hang) {
        this.hungResponses.add(res);
        return;
      }
      const status = f.status ?? 500;
      this.sendStatus(res, status, f.reason ?? reasonFor(status), f.message ?? `injected failure ${status}`);
      return;
    }
    let match: (obj: KubeObject) => boolean;
    try {
      match = selectorMatcher(url.searchParams.get("labelSelector"), url.searchParams.get("fieldSelector"));
    } catch (err) {
      this.sendStatus(res, 400, "BadRequest", (err as Error).message);
      return;
    }
    if (watch) this.serveWatch(req, res, route.resource, route.namespace, match, url.searchParams);
    else this.serveList(req, res, route.resource, route.namespace, match, url.searchParams);
  }

  private route(pathname: string): { resource: KubeResource; namespace: string | undefined } | undefined {
    for (const r of this.resources.values()) {
      const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
      if (pathname === `${base}/${r.plural}`) return { resource: r, namespace: undefined };
      const m = pathname.startsWith(`${base}/namespaces/`)
        ? pathname.slice(base.length).match(/^\/namespaces\/([^/]+)\/([^/]+)$/)
        : null;
      if (m && m[2] === r.plural && r.namespaced)
        return { resource: r, namespace: decodeURIComponent(m[1]!) };
    }
    return undefined;
  }

  private serveList(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    resource: KubeResource,
    namespace: string | undefined,
    match: (obj: KubeObject) => boolean,
    query: URLSearchParams,
  ): void {
    const limit = Number(query.get("limit") ?? "0");
    const cont = query.get("continue");
    let snapshot: ListSnapshot;
    let offset = 0;
    let token: string;
    if (cont) {
      const [id, off] = Buffer.from(cont, "base64url").toString().split(":");
      const found = this.snapshots.get(id ?? "");
      if (!found) {
        this.sendStatus(
          res,
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result.",
        );
        return;
      }
      snapshot = found;
      offset = Number(off);
      token = id!;
    } else {
      const items = [...this.store(resource.plural).values()]
        .filter((o) => (!namespace || o.metadata?.namespace === namespace) && match(o))
        .sort((a, b) => keyOf(a).localeCompare(keyOf(b)))
        .map((o) => {
          const { apiVersion: _a, kind: _k, ...rest } = structuredClone(o);
          return rest;
        });
      snapshot = { rv: this.rv, items };
      token = String(this.nextId++);
      if (limit > 0) this.snapshots.set(token, snapshot);
    }
    const end = limit > 0 ? Math.min(snapshot.items.length, offset + limit) : snapshot.items.length;
    const more = end < snapshot.items.length;
    const body = {
      kind: `${resource.kind}List`,
      apiVersion: apiVersionOf(resource),
      metadata: {
        resourceVersion: String(snapshot.rv),
        ...(more
          ? {
              continue: Buffer.from(`${token}:${end}`).toString("base64url"),
              remainingItemCount: snapshot.items.length - end,
            }
          : {}),
      },
      items: snapshot.items.slice(offset, end),
    };
    if (!more) this.snapshots.delete(token);
    const json = Buffer.from(JSON.stringify(body));
    const gzip = this.options.gzipLists && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    res.writeHead(200, {
      "content-type": "application/json",
      ...(gzip ? { "content-encoding": "gzip" } : {}),
    });
    res.end(gzip ? gzipSync(json) : json);
  }

  private serveWatch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    resource: KubeResource,
    namespace: string | undefined,
    match: (obj: KubeObject) => boolean,
    query: URLSearchParams,
  ): void {
    const rvParam = query.get("resourceVersion");
    const from = rvParam ? Number(rvParam) : 0;
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    const w: ActiveWatch = {
      id: this.nextId++,
      resource,
      namespace,
      match,
      bookmarks: query.get("allowWatchBookmarks") === "true",
      res,
      socket: req.socket,
      hung: false,
      cutMidEvent: false,
      closed: false,
    };
    if (from > 0 && from < this.compactedRv) {
      res.end(
        `${JSON.stringify({
          type: "ERROR",
          object: { ...GONE, message: `too old resource version: ${from} (${this.compactedRv})` },
        })}\n`,
      );
      return;
    }
    this.watches.add(w);
    res.on("close", () => {
      w.closed = true;
      this.watches.delete(w);
    });
    if (from === 0) {
      // No resourceVersion: synthetic ADDED events for the current state, as the real server does.
      for (const obj of this.store(resource.plural).values()) {
        this.deliver(w, { rv: this.rv, resource: resource.plural, type: "ADDED", obj, prev: undefined });
      }
      return;
    }
    for (const event of this.history) {
      if (event.rv > from && event.resource === resource.plural) this.deliver(w, event);
    }
  }

  private sendStatus(res: http.ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message,
        reason,
        code,
      }),
    );
  }
}

function apiVersionOf(r: KubeResource): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

function keyOf(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${obj.metadata?.name ?? ""}` : (obj.metadata?.name ?? "");
}

function reasonFor(status: number): string {
  if (status === 410) return "Expired";
  if (status === 429) return "TooManyRequests";
  if (status === 503) return "ServiceUnavailable";
  if (status >= 500) return "InternalError";
  return "BadRequest";
}

/** Equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`) and field selectors (`x.y=z`, `x.y!=z`). */
function selectorMatcher(
  labelSelector: string | null,
  fieldSelector: string | null,
): (obj: KubeObject) => boolean {
  const tests: Array<(obj: KubeObject) => boolean> = [];
  for (const term of (labelSelector ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)) {
    const m = term.match(/^(!?)([^=!]+?)\s*(?:(==|=|!=)\s*(.*))?$/);
    if (!m) throw new Error(`unable to parse label selector term "${term}"`);
    const [, neg, key, op, value] = m;
    const label = (obj: KubeObject) => obj.metadata?.labels?.[key!];
    if (!op) tests.push(neg ? (o) => label(o) === undefined : (o) => label(o) !== undefined);
    else if (op === "!=") tests.push((o) => label(o) !== value);
    else tests.push((o) => label(o) === value);
  }
  for (const term of (fieldSelector ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)) {
    const m = term.match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new Error(`unable to parse field selector term "${term}"`);
    const [, path, op, value] = m;
    const field = (obj: KubeObject) => {
      let cur: unknown = obj;
      for (const part of path!.split(".")) cur = (cur as Record<string, unknown> | undefined)?.[part];
      return cur === undefined ? "" : String(cur);
    };
    tests.push(op === "!=" ? (o) => field(o) !== value : (o) => field(o) === value);
  }
  return (obj) => tests.every((t) => t(obj));
}

/**
 * Polls `condition` every few milliseconds until it holds; fails after `timeoutMs`
 * with `what` in the message. For waiting on real I/O in tests without fixed sleeps.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what = "condition",
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
