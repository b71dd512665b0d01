/**
 * The httpGet probe handler, with kubelet's semantics (pkg/probe/http):
 *
 * - one `GET` per probe on a fresh connection (`Connection: close`), HTTPS with
 *   certificate verification off; for a host name SNI is the URL host, never the
 *   `Host` header; no SNI for an IP;
 * - status 200–399 is success, anything else (and any connection or protocol
 *   error, and the timeout) is failure;
 * - redirects are followed only while they stay on the probe's host name (the port
 *   may change), at most 9 (Go stops at the 10th); a redirect elsewhere ends the
 *   probe with the 3xx response, which counts as success (kubelet's `Warning`);
 *   a custom `Host` header is kept only across relative redirects;
 * - the body is read up to 10 KiB; an error while reading it makes the probe
 *   *error* ({@link ProbeError}, discarded by kubelet) rather than fail;
 * - the whole exchange, redirects and body included, shares one timeout.
 *
 * @module
 */
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { type Clock, describeError, realClock } from "@worknode/core";
import { type ProbeOutcome, probeFailure, probeSuccess } from "./outcome.js";
import { type HttpProbeRequest, joinHostPort, ProbeError } from "./probe-target.js";

/** Most bytes of a response body kubelet reads. */
const MAX_BODY_BYTES = 10 * 1024;
/** Go's `http.Client` refuses the 10th redirect. */
const MAX_REQUESTS = 10;
/** The statuses Go's client follows. */
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

interface Target {
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly port: number;
  readonly path: string;
  /** `Host` header override, when kept. */
  readonly hostHeader: string | undefined;
}

interface Exchange {
  readonly status: number;
  readonly location: string | undefined;
  readonly body: string;
}

class BodyReadError extends Error {}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function headerObject(
  headers: ReadonlyArray<readonly [string, string]>,
  hostHeader: string | undefined,
): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  const canonical = new Map<string, string>();
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (lower === "host") continue;
    const key = canonical.get(lower) ?? name;
    canonical.set(lower, key);
    const prev = out[key];
    out[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  if (hostHeader !== undefined) out.Host = hostHeader;
  return out;
}

function exchange(target: Target, headers: OutgoingHttpHeaders, signal: AbortSignal): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    const common = {
      host: target.host,
      port: target.port,
      path: target.path,
      method: "GET",
      headers,
      agent: false as const,
      signal,
    };
    let responded = false;
    const onResponse = (res: IncomingMessage) => {
      responded = true;
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        res.removeAllListeners("data");
        resolve({
          status: res.statusCode ?? 0,
          location: typeof res.headers.location === "string" ? res.headers.location : undefined,
          body: Buffer.concat(chunks).toString("utf8"),
        });
        res.destroy();
      };
      res.on("data", (chunk: Buffer) => {
        const room = MAX_BODY_BYTES - size;
        chunks.push(chunk.subarray(0, room));
        size += Math.min(room, chunk.length);
        if (size >= MAX_BODY_BYTES) finish();
      });
      res.once("end", finish);
      res.once("error", (err) => reject(new BodyReadError(err.message)));
      res.once("aborted", () => reject(new BodyReadError("response body aborted")));
    };
    const req =
      target.scheme === "https"
        ? httpsRequest(
            {
              ...common,
              rejectUnauthorized: false,
              servername: isIP(target.host) ? "" : target.host,
            },
            onResponse,
          )
        : httpRequest(common, onResponse);
    req.once("error", (err) => reject(responded ? new BodyReadError(err.message) : err));
    req.end();
  });
}

/**
 * Runs an httpGet probe.
 * @throws ProbeError when reading the response body fails (kubelet discards such a result)
 */
export async function runHttpProbe(
  request: HttpProbeRequest,
  timeoutMs: number,
  clock: Clock = realClock,
): Promise<ProbeOutcome> {
  const hostHeaderEntry = request.headers.find(([name]) => name.toLowerCase() === "host");
  const originalHost = stripBrackets(request.host).toLowerCase();
  let target: Target = {
    scheme: request.scheme,
    host: request.host,
    port: request.port,
    path: request.path,
    hostHeader: hostHeaderEntry?.[1] || undefined,
  };
  const url = (t: Target) => `${t.scheme}://${joinHostPort(t.host, t.port)}${t.path}`;
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(), timeoutMs);
  try {
    for (let requests = 1; ; requests++) {
      let res: Exchange;
      try {
        res = await exchange(target, headerObject(request.headers, target.hostHeader), controller.signal);
      } catch (err) {
        if (controller.signal.aborted) {
          const reason = `Get "${url(target)}": context deadline exceeded (Client.Timeout exceeded)`;
          if (err instanceof BodyReadError) throw new ProbeError(`${reason} while reading body`);
          return probeFailure(reason);
        }
        if (err instanceof BodyReadError)
          throw new ProbeError(`reading body of ${url(target)}: ${err.message}`);
        return probeFailure(`Get "${url(target)}": ${describeError(err)}`);
      }
      if (REDIRECT_STATUSES.has(res.status) && res.location !== undefined) {
        let next: URL;
        try {
          next = new URL(res.location, url(target));
        } catch {
          return probeFailure(`Get "${url(target)}": failed to parse Location header "${res.location}"`);
        }
        if (stripBrackets(next.hostname).toLowerCase() !== originalHost) {
          return probeSuccess(`Probe terminated redirects, Response body: ${res.body}`);
        }
        if (requests >= MAX_REQUESTS) return probeFailure(`Get "${next.href}": stopped after 10 redirects`);
        const scheme = next.protocol.slice(0, -1);
        if (scheme !== "http" && scheme !== "https") {
          return probeFailure(`Get "${next.href}": unsupported protocol scheme "${scheme}"`);
        }
        const relative = !/^[a-z][a-z0-9+.-]*:/i.test(res.location) && !res.location.startsWith("//");
        target = {
          scheme,
          host: stripBrackets(next.hostname),
          port: next.port ? Number(next.port) : scheme === "https" ? 443 : 80,
          path: `${next.pathname}${next.search}`,
          hostHeader: relative ? target.hostHeader : undefined,
        };
        continue;
      }
      if (res.status >= 200 && res.status < 400) {
        return res.status >= 300
          ? probeSuccess(`Probe terminated redirects, Response body: ${res.body}`)
          : probeSuccess(res.body);
      }
      return probeFailure(`HTTP probe failed with statuscode: ${res.status}`);
    }
  } finally {
    timer.cancel();
  }
}
