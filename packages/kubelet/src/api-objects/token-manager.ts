/**
 * Service-account tokens for projected volumes, as kubelet's token manager
 * (pkg/kubelet/token) gets them: a `TokenRequest` (POST
 * `serviceaccounts/<sa>/token`) with the projection's audience and lifetime,
 * bound to the pod (`boundObjectRef`), cached per pod, service account,
 * audience and lifetime, and requested again once the token is older than 80 %
 * of its lifetime or than 24 h (minus a jitter of up to 10 s).
 *
 * @module
 */
import {
  ApiStatusError,
  type Clock,
  describeError,
  type KubeApiClient,
  type Pod,
  realClock,
} from "@worknode/core";
import { PodObjectError, type ServiceAccountTokenProjection } from "./provider.js";

/** kubelet's cap on a token's age before it is refreshed (24 h). */
export const TOKEN_MAX_TTL_MS = 24 * 60 * 60 * 1000;
/** kubelet's maximum refresh jitter (10 s). */
export const TOKEN_MAX_JITTER_MS = 10_000;
/** The API's default token lifetime (3600 s). */
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600;

/** A `TokenRequest` as the kubelet sends it. */
export interface TokenRequestBody {
  readonly apiVersion: "authentication.k8s.io/v1";
  readonly kind: "TokenRequest";
  readonly spec: {
    readonly audiences: string[];
    readonly expirationSeconds: number;
    readonly boundObjectRef: { apiVersion: "v1"; kind: "Pod"; name: string; uid: string };
  };
}

/** The fields of a `TokenRequest` response the manager uses. */
interface TokenRequestResponse {
  spec?: { expirationSeconds?: number };
  status?: { token?: string; expirationTimestamp?: string };
}

/** A token held by the manager. */
export interface CachedToken {
  readonly token: string;
  /** Expiry, epoch ms. */
  readonly expiresAtMs: number;
  /** Lifetime the API granted, seconds. */
  readonly expirationSeconds: number;
}

/** The `TokenRequest` for a pod's projection (see the module notes). */
export function tokenRequestFor(pod: Pod, projection: ServiceAccountTokenProjection): TokenRequestBody {
  return {
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenRequest",
    spec: {
      audiences: projection.audience ? [projection.audience] : [],
      expirationSeconds: projection.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS,
      boundObjectRef: {
        apiVersion: "v1",
        kind: "Pod",
        name: pod.metadata?.name ?? "",
        uid: pod.metadata?.uid ?? "",
      },
    },
  };
}

/**
 * kubelet's `requiresRefresh`: true once the token is older than 24 h, or
 * within 20 % of its lifetime of expiring (each less `jitterMs`).
 */
export function tokenRequiresRefresh(token: CachedToken, nowMs: number, jitterMs = 0): boolean {
  const ttlMs = token.expirationSeconds * 1000;
  const issuedAt = token.expiresAtMs - ttlMs;
  if (nowMs > issuedAt + TOKEN_MAX_TTL_MS - jitterMs) return true;
  return nowMs > token.expiresAtMs - (ttlMs * 20) / 100 - jitterMs;
}

/** Options of {@link TokenManager}. */
export interface TokenManagerOptions {
  readonly client: KubeApiClient;
  readonly clock?: Clock;
  /** Random source for the refresh jitter (tests); default `Math.random`. */
  readonly random?: () => number;
}

/** Requests and caches service-account tokens bound to pods (see the module notes). */
export class TokenManager {
  private readonly cache = new Map<string, CachedToken>();
  private readonly clock: Clock;
  private readonly random: () => number;

  constructor(private readonly options: TokenManagerOptions) {
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
  }

  /**
   * A token of the pod's service account for the projection, cached until it needs a refresh.
   * A refresh that fails while the cached token is still valid returns the cached one.
   * @throws {@link PodObjectError} when no valid token can be had
   */
  async token(pod: Pod, projection: ServiceAccountTokenProjection): Promise<string> {
    const body = tokenRequestFor(pod, projection);
    const ns = pod.metadata?.namespace ?? "";
    const sa = pod.spec?.serviceAccountName || "default";
    const key = JSON.stringify([
      ns,
      sa,
      body.spec.audiences,
      body.spec.expirationSeconds,
      body.spec.boundObjectRef.uid,
    ]);
    const cached = this.cache.get(key);
    const now = this.clock.now();
    if (cached && !tokenRequiresRefresh(cached, now, this.random() * TOKEN_MAX_JITTER_MS))
      return cached.token;
    try {
      const res = await this.options.client.requestJson<TokenRequestResponse>(
        "POST",
        `/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts/${encodeURIComponent(sa)}/token`,
        { body },
      );
      const token = res?.status?.token;
      const exp = Date.parse(res?.status?.expirationTimestamp ?? "");
      if (!token || Number.isNaN(exp)) throw new Error("TokenRequest response has no token or expiry");
      const fresh: CachedToken = {
        token,
        expiresAtMs: exp,
        expirationSeconds: res.spec?.expirationSeconds ?? body.spec.expirationSeconds,
      };
      this.cache.set(key, fresh);
      return token;
    } catch (e) {
      if (cached && cached.expiresAtMs > now) return cached.token;
      const reason = e instanceof ApiStatusError && e.status === 403 ? "Forbidden" : "Unavailable";
      throw new PodObjectError(
        reason,
        `failed to fetch token for service account ${ns}/${sa}: ${describeError(e)}`,
        { cause: e },
      );
    }
  }

  /** Drops the tokens bound to a pod. */
  forgetPod(uid: string): void {
    for (const k of [...this.cache.keys()]) {
      if ((JSON.parse(k) as unknown[])[4] === uid) this.cache.delete(k);
    }
  }

  /** Number of cached tokens (tests, metrics). */
  get size(): number {
    return this.cache.size;
  }
}
