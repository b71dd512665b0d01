/**
 * kubelet's request authentication (`authentication` in its config), in the
 * order of its delegating authenticator:
 *
 * 1. **x509** (`x509.clientCAFile`, `--client-ca-file`): a client certificate
 *    verified against the client CA authenticates as its CN, with its O
 *    values as groups. A certificate that does not verify is an error.
 * 2. **webhook** (`webhook.enabled`): a bearer token is reviewed through a
 *    TokenReview; a token the API server does not accept is an error
 *    ("invalid bearer token").
 * 3. **anonymous** (`anonymous.enabled`, off by default): a request no
 *    authenticator recognized and none failed on is `system:anonymous` in
 *    `system:unauthenticated`.
 *
 * Authenticated users get `system:authenticated` added to their groups. Any
 * error, or no identity when anonymous requests are disabled, means 401.
 *
 * @module
 */
import { describeError } from "@worknode/core";
import type { TokenReviewer } from "./token-review.js";
import { anonymousUser, type UserInfo, withAuthenticatedGroup } from "./user-info.js";

/** The client certificate of a TLS connection, as far as authentication needs it. */
export interface PresentedClientCertificate {
  /** Subject common name. */
  readonly commonName: string;
  /** Subject organizations. */
  readonly organizations: readonly string[];
  /** Whether the TLS layer verified it against the client CA (chain, validity, client-auth usage). */
  readonly verified: boolean;
  /** Why it did not verify. */
  readonly verifyError?: string;
}

/** What authentication looks at in a request. */
export interface AuthenticationInput {
  /** The client certificate, when one was presented. */
  readonly clientCertificate?: PresentedClientCertificate;
  /** The `Authorization` header. */
  readonly authorization?: string;
}

/** The outcome of authenticating a request. */
export type AuthenticationResult =
  | { readonly authenticated: true; readonly user: UserInfo; readonly method: "x509" | "token" | "anonymous" }
  | { readonly authenticated: false; readonly reason: string };

/** kubelet's `authentication` settings, resolved. */
export interface AuthenticatorOptions {
  /** Accept client certificates (verified by the TLS layer against the client CA). */
  readonly x509?: boolean;
  /** Review bearer tokens through this reviewer (`webhook.enabled`). */
  readonly tokenReviewer?: TokenReviewer;
  /** Let unauthenticated requests through as `system:anonymous`; default false. */
  readonly anonymous?: boolean;
}

/** The bearer token of an `Authorization` header (undefined when there is none or it is empty). */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/** The user a verified client certificate stands for (CN → name, O → groups). */
export function userFromCertificate(cert: PresentedClientCertificate): UserInfo {
  return { username: cert.commonName, groups: [...cert.organizations] };
}

/** Authenticates requests to the kubelet API (see the module notes). */
export class KubeletAuthenticator {
  constructor(private readonly options: AuthenticatorOptions) {}

  /** Authenticates one request. Never throws: failures are results. */
  async authenticate(input: AuthenticationInput): Promise<AuthenticationResult> {
    const errors: string[] = [];
    const cert = input.clientCertificate;
    if (this.options.x509 && cert) {
      if (cert.verified && cert.commonName) {
        return {
          authenticated: true,
          user: withAuthenticatedGroup(userFromCertificate(cert)),
          method: "x509",
        };
      }
      errors.push(
        cert.verified
          ? "client certificate has no common name"
          : `verifying certificate ${JSON.stringify(cert.commonName)} failed: ${cert.verifyError ?? "unknown authority"}`,
      );
    }
    const reviewer = this.options.tokenReviewer;
    const token = bearerToken(input.authorization);
    if (reviewer && token) {
      try {
        const r = await reviewer.review(token);
        if (r.authenticated && r.user.username) {
          return { authenticated: true, user: withAuthenticatedGroup(r.user), method: "token" };
        }
        errors.push(r.authenticated ? "token review returned no user name" : "invalid bearer token");
      } catch (err) {
        errors.push(describeError(err));
      }
    }
    if (errors.length > 0) return { authenticated: false, reason: errors.join("; ") };
    if (this.options.anonymous) return { authenticated: true, user: anonymousUser, method: "anonymous" };
    return { authenticated: false, reason: "no credentials and anonymous requests are disabled" };
  }
}
