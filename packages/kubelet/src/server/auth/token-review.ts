/**
 * Bearer-token authentication through the API server's TokenReview
 * (`authentication.k8s.io/v1`), as kubelet's webhook authenticator does, with
 * its cache: results (authenticated or not) are kept for `cacheTTL`
 * (kubelet's `authentication.webhook.cacheTTL`, default 2 m); failed reviews
 * are not cached.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type Clock, describeError, type KubeApiClient, realClock, UnavailableError } from "@worknode/core";
import { TtlCache } from "./ttl-cache.js";
import type { UserInfo } from "./user-info.js";

/** kubelet's default `authentication.webhook.cacheTTL`: 2 minutes. */
export const DEFAULT_TOKEN_CACHE_TTL_MS = 120_000;

/** The outcome of reviewing a token. */
export type TokenReviewResult =
  | { readonly authenticated: true; readonly user: UserInfo; readonly audiences?: readonly string[] }
  | { readonly authenticated: false; readonly error?: string };

/** Reviews bearer tokens. */
export interface TokenReviewer {
  /**
   * Reviews a token.
   * @throws UnavailableError when the review itself fails (the request is then refused, not cached)
   */
  review(token: string): Promise<TokenReviewResult>;
}

/** The wire form of a TokenReview (the fields used). */
export interface TokenReviewObject {
  apiVersion: "authentication.k8s.io/v1";
  kind: "TokenReview";
  spec: { token: string; audiences?: string[] };
  status?: {
    authenticated?: boolean;
    user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
    audiences?: string[];
    error?: string;
  };
}

/** The TokenReview to create for a token. */
export function tokenReviewRequest(token: string, audiences?: readonly string[]): TokenReviewObject {
  return {
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenReview",
    spec: { token, ...(audiences && audiences.length > 0 ? { audiences: [...audiences] } : {}) },
  };
}

/** The result a TokenReview answer stands for. */
export function tokenReviewResult(review: TokenReviewObject | undefined): TokenReviewResult {
  const status = review?.status;
  if (!status?.authenticated)
    return { authenticated: false, ...(status?.error ? { error: status.error } : {}) };
  const u = status.user ?? {};
  return {
    authenticated: true,
    user: {
      username: u.username ?? "",
      ...(u.uid ? { uid: u.uid } : {}),
      groups: u.groups ?? [],
      ...(u.extra ? { extra: u.extra } : {}),
    },
    ...(status.audiences ? { audiences: status.audiences } : {}),
  };
}

/** Options of {@link WebhookTokenReviewer}. */
export interface WebhookTokenReviewerOptions {
  /** Client of the API server, with the kubelet's credentials. */
  readonly client: KubeApiClient;
  /** Result cache TTL; default 2 m. 0 disables caching. */
  readonly cacheTtlMs?: number;
  /** Audiences to ask for; default none (the API server's). */
  readonly audiences?: readonly string[];
  readonly clock?: Clock;
}

/** {@link TokenReviewer} posting TokenReviews to the API server, with a TTL cache. */
export class WebhookTokenReviewer implements TokenReviewer {
  private readonly cache: TtlCache<string, TokenReviewResult>;
  private readonly ttlMs: number;

  constructor(private readonly options: WebhookTokenReviewerOptions) {
    this.cache = new TtlCache(options.clock ?? realClock);
    this.ttlMs = options.cacheTtlMs ?? DEFAULT_TOKEN_CACHE_TTL_MS;
  }

  async review(token: string): Promise<TokenReviewResult> {
    const key = createHash("sha256").update(token).digest("hex");
    const cached = this.cache.get(key);
    if (cached) return cached;
    let answer: TokenReviewObject | undefined;
    try {
      answer = await this.options.client.requestJson<TokenReviewObject>(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        { body: tokenReviewRequest(token, this.options.audiences) },
      );
    } catch (err) {
      throw new UnavailableError(this.options.client.server, `TokenReview failed: ${describeError(err)}`, {
        cause: err,
      });
    }
    const result = tokenReviewResult(answer);
    this.cache.set(key, result, this.ttlMs);
    return result;
  }
}
