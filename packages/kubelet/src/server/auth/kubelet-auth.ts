/**
 * {@link KubeletAuth}: authentication + authorization of kubelet API requests
 * the way kubelet's auth filter runs them — 401 `Unauthorized` when the
 * request does not authenticate, then each of the request's attributes (see
 * {@link nodeRequestAttributes}) until one is allowed, 403 with kubelet's
 * `Forbidden (user=…, verb=…, resource=…, subresource(s)=[…])` message when
 * none is, 500 when the authorizer fails — and {@link buildKubeletAuth}, which
 * assembles it from kubelet's `authentication` / `authorization` settings.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import type { TLSSocket } from "node:tls";
import {
  type Clock,
  ConfigError,
  describeError,
  type KubeApiClient,
  type Logger,
  silentLogger,
} from "@worknode/core";
import {
  type AuthenticationInput,
  KubeletAuthenticator,
  type PresentedClientCertificate,
} from "./authenticator.js";
import { AlwaysAllowAuthorizer, type KubeletAuthorizer, WebhookAuthorizer } from "./authorizer.js";
import { forbiddenMessage, nodeRequestAttributes } from "./request-attributes.js";
import { WebhookTokenReviewer } from "./token-review.js";
import type { UserInfo } from "./user-info.js";

/** The outcome of checking a request. */
export type AuthCheckResult =
  | { readonly allowed: true; readonly user: UserInfo }
  | { readonly allowed: false; readonly status: 401 | 403 | 500; readonly message: string };

/** A request, as far as authentication and authorization look at it. */
export interface AuthCheckInput extends AuthenticationInput {
  readonly method: string;
  /** The URL path (no query). */
  readonly path: string;
}

/** Authenticates and authorizes kubelet API requests (see the module notes). */
export class KubeletAuth {
  private readonly logger: Logger;

  constructor(
    private readonly options: {
      readonly nodeName: string;
      readonly authenticator: KubeletAuthenticator;
      readonly authorizer: KubeletAuthorizer;
      /** PEM of the client CA; the server asks for client certificates verified against it. */
      readonly clientCA?: Buffer;
      readonly logger?: Logger;
    },
  ) {
    this.logger = (options.logger ?? silentLogger()).child({ component: "kubelet-auth" });
  }

  /** PEM of the client CA, when x509 authentication is on. */
  get clientCA(): Buffer | undefined {
    return this.options.clientCA;
  }

  /** Checks one request. Never throws. */
  async check(input: AuthCheckInput): Promise<AuthCheckResult> {
    const authn = await this.options.authenticator.authenticate(input);
    if (!authn.authenticated) {
      this.logger.debug({ path: input.path, reason: authn.reason }, "unauthenticated request");
      return { allowed: false, status: 401, message: "Unauthorized" };
    }
    const attrs = nodeRequestAttributes(authn.user, input.method, input.path, this.options.nodeName);
    for (const a of attrs) {
      try {
        const d = await this.options.authorizer.authorize(a);
        if (d.allowed) return { allowed: true, user: authn.user };
      } catch (err) {
        this.logger.warn({ err: describeError(err), user: a.user.username }, "authorization error");
        return {
          allowed: false,
          status: 500,
          message: `Authorization error (user=${a.user.username}, verb=${a.verb}, resource=${a.resource}, subresource=${a.subresource})`,
        };
      }
    }
    return { allowed: false, status: 403, message: forbiddenMessage(attrs) };
  }
}

/** The client certificate presented on a TLS connection, if any (checked against the server's `ca`). */
export function presentedClientCertificate(socket: TLSSocket): PresentedClientCertificate | undefined {
  const cert = socket.getPeerCertificate?.();
  if (!cert || Object.keys(cert).length === 0 || !cert.subject) return undefined;
  const o = cert.subject.O as string | string[] | undefined;
  const cn = cert.subject.CN as string | string[] | undefined;
  const err = socket.authorizationError;
  return {
    commonName: Array.isArray(cn) ? (cn[0] ?? "") : (cn ?? ""),
    organizations: o === undefined ? [] : Array.isArray(o) ? o : [o],
    verified: socket.authorized === true,
    ...(err ? { verifyError: err instanceof Error ? err.message : String(err) } : {}),
  };
}

/** kubelet's `authentication` settings. */
export interface KubeletAuthenticationConfig {
  /** `x509.clientCAFile` (`--client-ca-file`): accept client certificates signed by this CA. */
  readonly x509?: { readonly clientCAFile?: string };
  /** `webhook`: review bearer tokens through the API server. */
  readonly webhook?: { readonly enabled?: boolean /** default 2 m */; readonly cacheTTLMs?: number };
  /** `anonymous.enabled` (`--anonymous-auth`); default false. */
  readonly anonymous?: { readonly enabled?: boolean };
}

/** kubelet's `authorization` settings. */
export interface KubeletAuthorizationConfig {
  /** `AlwaysAllow` or `Webhook` (`--authorization-mode`). */
  readonly mode: "AlwaysAllow" | "Webhook";
  readonly webhook?: {
    /** default 5 m */
    readonly cacheAuthorizedTTLMs?: number;
    /** default 30 s */
    readonly cacheUnauthorizedTTLMs?: number;
  };
}

/** Input of {@link buildKubeletAuth}. */
export interface BuildKubeletAuthOptions {
  readonly nodeName: string;
  readonly authentication: KubeletAuthenticationConfig;
  readonly authorization: KubeletAuthorizationConfig;
  /** Client of the API server with the kubelet's credentials (needed by the webhooks). */
  readonly apiClient?: KubeApiClient;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/**
 * Builds {@link KubeletAuth} from kubelet's settings.
 * @throws ConfigError when a webhook is on without an API client, or the client CA file cannot be read
 */
export async function buildKubeletAuth(options: BuildKubeletAuthOptions): Promise<KubeletAuth> {
  const { authentication: authn, authorization: authz, apiClient } = options;
  let clientCA: Buffer | undefined;
  const caFile = authn.x509?.clientCAFile;
  if (caFile) {
    clientCA = await readFile(caFile).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`--client-ca-file: cannot read ${caFile}: ${err.code ?? err.message}`, {
        cause: err,
      });
    });
  }
  if (authn.webhook?.enabled && !apiClient) {
    throw new ConfigError("authentication.webhook.enabled needs an API server client (--kubeconfig)");
  }
  if (authz.mode === "Webhook" && !apiClient) {
    throw new ConfigError("authorization mode Webhook needs an API server client (--kubeconfig)");
  }
  const authenticator = new KubeletAuthenticator({
    x509: clientCA !== undefined,
    ...(authn.webhook?.enabled && apiClient
      ? {
          tokenReviewer: new WebhookTokenReviewer({
            client: apiClient,
            ...(authn.webhook.cacheTTLMs !== undefined ? { cacheTtlMs: authn.webhook.cacheTTLMs } : {}),
            ...(options.clock ? { clock: options.clock } : {}),
          }),
        }
      : {}),
    anonymous: authn.anonymous?.enabled === true,
  });
  const authorizer: KubeletAuthorizer =
    authz.mode === "Webhook" && apiClient
      ? new WebhookAuthorizer({
          client: apiClient,
          ...(authz.webhook?.cacheAuthorizedTTLMs !== undefined
            ? { cacheAuthorizedTtlMs: authz.webhook.cacheAuthorizedTTLMs }
            : {}),
          ...(authz.webhook?.cacheUnauthorizedTTLMs !== undefined
            ? { cacheUnauthorizedTtlMs: authz.webhook.cacheUnauthorizedTTLMs }
            : {}),
          ...(options.clock ? { clock: options.clock } : {}),
        })
      : new AlwaysAllowAuthorizer();
  return new KubeletAuth({
    nodeName: options.nodeName,
    authenticator,
    authorizer,
    ...(clientCA ? { clientCA } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}
