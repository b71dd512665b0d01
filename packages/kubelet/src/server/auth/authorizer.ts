/**
 * kubelet's request authorization (`authorization.mode`):
 *
 * - `AlwaysAllow`: every authenticated request is allowed (standalone nodes).
 * - `Webhook`: a SubjectAccessReview (`authorization.k8s.io/v1`) is posted to
 *   the API server for the request's attributes; answers are cached —
 *   allowed for `cacheAuthorizedTTL` (default 5 m), not allowed for
 *   `cacheUnauthorizedTTL` (default 30 s). A review that fails is an error
 *   (kubelet answers 500), never cached.
 *
 * @module
 */
import { type Clock, describeError, type KubeApiClient, realClock, UnavailableError } from "@worknode/core";
import type { NodeRequestAttributes } from "./request-attributes.js";
import { TtlCache } from "./ttl-cache.js";

/** kubelet's default `authorization.webhook.cacheAuthorizedTTL`: 5 minutes. */
export const DEFAULT_AUTHORIZED_TTL_MS = 300_000;
/** kubelet's default `authorization.webhook.cacheUnauthorizedTTL`: 30 seconds. */
export const DEFAULT_UNAUTHORIZED_TTL_MS = 30_000;

/** An authorization decision. */
export interface AuthorizationDecision {
  readonly allowed: boolean;
  /** The authorizer's reason, if it gave one. */
  readonly reason?: string;
}

/** Decides whether a request's attributes are allowed. */
export interface KubeletAuthorizer {
  /**
   * @throws UnavailableError when the decision cannot be made (kubelet answers 500)
   */
  authorize(attrs: NodeRequestAttributes): Promise<AuthorizationDecision>;
}

/** `authorization.mode: AlwaysAllow`. */
export class AlwaysAllowAuthorizer implements KubeletAuthorizer {
  authorize(): Promise<AuthorizationDecision> {
    return Promise.resolve({ allowed: true });
  }
}

/** The wire form of a SubjectAccessReview (the fields used). */
export interface SubjectAccessReviewObject {
  apiVersion: "authorization.k8s.io/v1";
  kind: "SubjectAccessReview";
  spec: {
    resourceAttributes: {
      namespace?: string;
      verb: string;
      group: string;
      version: string;
      resource: string;
      subresource?: string;
      name?: string;
    };
    user: string;
    groups?: string[];
    uid?: string;
    extra?: Record<string, string[]>;
  };
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

/** The SubjectAccessReview kubelet's webhook authorizer posts for a request's attributes. */
export function subjectAccessReviewRequest(attrs: NodeRequestAttributes): SubjectAccessReviewObject {
  const { user } = attrs;
  return {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SubjectAccessReview",
    spec: {
      resourceAttributes: {
        verb: attrs.verb,
        group: "",
        version: attrs.apiVersion,
        resource: attrs.resource,
        ...(attrs.subresource ? { subresource: attrs.subresource } : {}),
        name: attrs.name,
      },
      user: user.username,
      ...(user.groups.length > 0 ? { groups: [...user.groups] } : {}),
      ...(user.uid ? { uid: user.uid } : {}),
      ...(user.extra
        ? { extra: Object.fromEntries(Object.entries(user.extra).map(([k, v]) => [k, [...v]])) }
        : {}),
    },
  };
}

/** The decision a SubjectAccessReview answer stands for. */
export function subjectAccessReviewDecision(
  review: SubjectAccessReviewObject | undefined,
): AuthorizationDecision {
  const s = review?.status;
  const allowed = s?.allowed === true && s.denied !== true;
  const reason = s?.reason || s?.evaluationError;
  return { allowed, ...(reason ? { reason } : {}) };
}

/** Options of {@link WebhookAuthorizer}. */
export interface WebhookAuthorizerOptions {
  /** Client of the API server, with the kubelet's credentials. */
  readonly client: KubeApiClient;
  /** How long allowed answers are kept; default 5 m. */
  readonly cacheAuthorizedTtlMs?: number;
  /** How long not-allowed answers are kept; default 30 s. */
  readonly cacheUnauthorizedTtlMs?: number;
  readonly clock?: Clock;
}

/** `authorization.mode: Webhook` (see the module notes). */
export class WebhookAuthorizer implements KubeletAuthorizer {
  private readonly cache: TtlCache<string, AuthorizationDecision>;

  constructor(private readonly options: WebhookAuthorizerOptions) {
    this.cache = new TtlCache(options.clock ?? realClock);
  }

  async authorize(attrs: NodeRequestAttributes): Promise<AuthorizationDecision> {
    const review = subjectAccessReviewRequest(attrs);
    const key = JSON.stringify(review.spec);
    const cached = this.cache.get(key);
    if (cached) return cached;
    let answer: SubjectAccessReviewObject | undefined;
    try {
      answer = await this.options.client.requestJson<SubjectAccessReviewObject>(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        { body: review },
      );
    } catch (err) {
      throw new UnavailableError(
        this.options.client.server,
        `SubjectAccessReview failed: ${describeError(err)}`,
        {
          cause: err,
        },
      );
    }
    const decision = subjectAccessReviewDecision(answer);
    this.cache.set(
      key,
      decision,
      decision.allowed
        ? (this.options.cacheAuthorizedTtlMs ?? DEFAULT_AUTHORIZED_TTL_MS)
        : (this.options.cacheUnauthorizedTtlMs ?? DEFAULT_UNAUTHORIZED_TTL_MS),
    );
    return decision;
  }
}
