import { FakeClock, type KubeApiClient, UnavailableError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { bearerToken, KubeletAuthenticator } from "../../src/server/auth/authenticator.js";
import {
  AlwaysAllowAuthorizer,
  type KubeletAuthorizer,
  type SubjectAccessReviewObject,
  subjectAccessReviewDecision,
  subjectAccessReviewRequest,
  WebhookAuthorizer,
} from "../../src/server/auth/authorizer.js";
import { KubeletAuth } from "../../src/server/auth/kubelet-auth.js";
import { nodeRequestAttributes } from "../../src/server/auth/request-attributes.js";
import {
  type TokenReviewer,
  type TokenReviewObject,
  type TokenReviewResult,
  tokenReviewResult,
  WebhookTokenReviewer,
} from "../../src/server/auth/token-review.js";

/** A reviewer that knows a fixed set of tokens and counts its calls. */
function reviewer(known: Record<string, string>, fail = false): TokenReviewer & { calls: number } {
  const r = {
    calls: 0,
    review(token: string): Promise<TokenReviewResult> {
      r.calls++;
      if (fail) return Promise.reject(new UnavailableError("api", "connection refused"));
      const username = known[token];
      return Promise.resolve(
        username ? { authenticated: true, user: { username, groups: ["team"] } } : { authenticated: false },
      );
    },
  };
  return r;
}

const verifiedCert = {
  commonName: "kube-apiserver-kubelet-client",
  organizations: ["system:masters"],
  verified: true,
};

/** A stand-in for the API client recording what was posted (the caches are the logic under test). */
function apiClient(answer: (path: string, body: unknown) => unknown): KubeApiClient & { posts: unknown[] } {
  const posts: unknown[] = [];
  return {
    server: "https://api.test",
    posts,
    requestJson: (_method: string, path: string, opts: { body?: unknown }) => {
      posts.push(opts.body);
      try {
        return Promise.resolve(answer(path, opts.body));
      } catch (err) {
        return Promise.reject(err);
      }
    },
  } as unknown as KubeApiClient & { posts: unknown[] };
}

describe("KubeletAuthenticator", () => {
  it("parses bearer tokens", () => {
    expect(bearerToken("Bearer abc.def")).toBe("abc.def");
    expect(bearerToken("bearer xyz")).toBe("xyz");
    expect(bearerToken("Bearer ")).toBeUndefined();
    expect(bearerToken("Basic Zm9vOmJhcg==")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it("authenticates a verified client certificate as CN with O groups plus system:authenticated", async () => {
    const a = new KubeletAuthenticator({ x509: true });
    expect(await a.authenticate({ clientCertificate: verifiedCert })).toEqual({
      authenticated: true,
      method: "x509",
      user: {
        username: "kube-apiserver-kubelet-client",
        groups: ["system:masters", "system:authenticated"],
      },
    });
  });

  it("refuses an unverified certificate even when anonymous requests are on", async () => {
    const a = new KubeletAuthenticator({ x509: true, anonymous: true });
    const r = await a.authenticate({
      clientCertificate: {
        commonName: "mallory",
        organizations: [],
        verified: false,
        verifyError: "unable to verify",
      },
    });
    expect(r.authenticated).toBe(false);
    if (!r.authenticated) expect(r.reason).toContain("mallory");
  });

  it("ignores certificates when x509 authentication is off", async () => {
    const a = new KubeletAuthenticator({ anonymous: false });
    expect((await a.authenticate({ clientCertificate: verifiedCert })).authenticated).toBe(false);
  });

  it("falls through an unverified certificate to a valid token", async () => {
    const a = new KubeletAuthenticator({ x509: true, tokenReviewer: reviewer({ t1: "bob" }) });
    const r = await a.authenticate({
      clientCertificate: { commonName: "x", organizations: [], verified: false },
      authorization: "Bearer t1",
    });
    expect(r).toMatchObject({ authenticated: true, method: "token", user: { username: "bob" } });
  });

  it("authenticates reviewed tokens and refuses unknown ones (no anonymous fallback)", async () => {
    const a = new KubeletAuthenticator({ tokenReviewer: reviewer({ t1: "bob" }), anonymous: true });
    expect(await a.authenticate({ authorization: "Bearer t1" })).toEqual({
      authenticated: true,
      method: "token",
      user: { username: "bob", groups: ["team", "system:authenticated"] },
    });
    const bad = await a.authenticate({ authorization: "Bearer nope" });
    expect(bad).toEqual({ authenticated: false, reason: "invalid bearer token" });
  });

  it("refuses when the token review itself fails", async () => {
    const a = new KubeletAuthenticator({ tokenReviewer: reviewer({}, true) });
    const r = await a.authenticate({ authorization: "Bearer t1" });
    expect(r.authenticated).toBe(false);
  });

  it("is anonymous only when enabled: system:anonymous in system:unauthenticated", async () => {
    expect((await new KubeletAuthenticator({ x509: true }).authenticate({})).authenticated).toBe(false);
    expect(await new KubeletAuthenticator({ x509: true, anonymous: true }).authenticate({})).toEqual({
      authenticated: true,
      method: "anonymous",
      user: { username: "system:anonymous", groups: ["system:unauthenticated"] },
    });
  });
});

describe("WebhookTokenReviewer", () => {
  it("posts a TokenReview and caches answers for the TTL (2 m by default)", async () => {
    const clock = new FakeClock();
    const client = apiClient((path, body) => {
      expect(path).toBe("/apis/authentication.k8s.io/v1/tokenreviews");
      const token = (body as TokenReviewObject).spec.token;
      return {
        ...(body as object),
        status:
          token === "good"
            ? {
                authenticated: true,
                user: { username: "system:serviceaccount:ns:sa", uid: "u1", groups: ["g"] },
              }
            : { authenticated: false, error: "token expired" },
      };
    });
    const r = new WebhookTokenReviewer({ client, clock });
    expect(await r.review("good")).toEqual({
      authenticated: true,
      user: { username: "system:serviceaccount:ns:sa", uid: "u1", groups: ["g"] },
    });
    expect(await r.review("bad")).toEqual({ authenticated: false, error: "token expired" });
    await r.review("good");
    await r.review("bad");
    expect(client.posts).toHaveLength(2);
    expect(client.posts[0]).toEqual({
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token: "good" },
    });
    await clock.advance(119_000);
    await r.review("good");
    expect(client.posts).toHaveLength(2);
    await clock.advance(1_000);
    await r.review("good");
    expect(client.posts).toHaveLength(3);
  });

  it("does not cache failed reviews", async () => {
    let fail = true;
    const client = apiClient(() => {
      if (fail) throw new Error("connection refused");
      return { status: { authenticated: true, user: { username: "x" } } };
    });
    const r = new WebhookTokenReviewer({ client, clock: new FakeClock() });
    await expect(r.review("t")).rejects.toBeInstanceOf(UnavailableError);
    fail = false;
    expect((await r.review("t")).authenticated).toBe(true);
  });

  it("reads TokenReview statuses defensively", () => {
    expect(tokenReviewResult(undefined)).toEqual({ authenticated: false });
    expect(
      tokenReviewResult({ apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: "" } }),
    ).toEqual({ authenticated: false });
  });
});

describe("WebhookAuthorizer", () => {
  const user = {
    username: "system:serviceaccount:default:reader",
    uid: "u-1",
    groups: ["system:serviceaccounts"],
  };
  const attrs = nodeRequestAttributes(user, "GET", "/stats/summary", "node-1")[0]!;

  it("posts kubelet's SubjectAccessReview for the attributes", () => {
    expect(subjectAccessReviewRequest(attrs)).toEqual({
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        resourceAttributes: {
          verb: "get",
          group: "",
          version: "v1",
          resource: "nodes",
          subresource: "stats",
          name: "node-1",
        },
        user: "system:serviceaccount:default:reader",
        groups: ["system:serviceaccounts"],
        uid: "u-1",
      },
    });
  });

  it("is allowed only when allowed and not denied", () => {
    const sar = (status: SubjectAccessReviewObject["status"]) => ({
      ...subjectAccessReviewRequest(attrs),
      status,
    });
    expect(subjectAccessReviewDecision(sar({ allowed: true }))).toEqual({ allowed: true });
    expect(subjectAccessReviewDecision(sar({ allowed: false, reason: "no RBAC" }))).toEqual({
      allowed: false,
      reason: "no RBAC",
    });
    expect(subjectAccessReviewDecision(sar({ allowed: true, denied: true })).allowed).toBe(false);
    expect(subjectAccessReviewDecision(undefined).allowed).toBe(false);
  });

  it("caches allowed answers 5 m and denied ones 30 s", async () => {
    const clock = new FakeClock();
    let allow = false;
    const client = apiClient((path, body) => {
      expect(path).toBe("/apis/authorization.k8s.io/v1/subjectaccessreviews");
      return { ...(body as object), status: { allowed: allow } };
    });
    const z = new WebhookAuthorizer({ client, clock });
    expect((await z.authorize(attrs)).allowed).toBe(false);
    allow = true;
    await clock.advance(29_000);
    expect((await z.authorize(attrs)).allowed).toBe(false);
    await clock.advance(1_000);
    expect((await z.authorize(attrs)).allowed).toBe(true);
    allow = false;
    await clock.advance(299_000);
    expect((await z.authorize(attrs)).allowed).toBe(true);
    await clock.advance(1_000);
    expect((await z.authorize(attrs)).allowed).toBe(false);
    expect(client.posts).toHaveLength(3);
    // another subresource is another question
    await z.authorize({ ...attrs, subresource: "proxy" });
    expect(client.posts).toHaveLength(4);
  });

  it("fails (not denies) when the review cannot be made", async () => {
    const z = new WebhookAuthorizer({
      client: apiClient(() => {
        throw new Error("boom");
      }),
      clock: new FakeClock(),
    });
    await expect(z.authorize(attrs)).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe("KubeletAuth", () => {
  const authenticator = new KubeletAuthenticator({ x509: true, tokenReviewer: reviewer({ t1: "bob" }) });
  /** Allows bob only the given subresources. */
  const only = (...subs: string[]): KubeletAuthorizer & { asked: string[] } => {
    const z = {
      asked: [] as string[],
      authorize(a: { subresource: string; user: { username: string } }) {
        z.asked.push(a.subresource);
        return Promise.resolve({ allowed: a.user.username === "bob" && subs.includes(a.subresource) });
      },
    };
    return z;
  };

  it("answers 401 Unauthorized for unauthenticated requests", async () => {
    const auth = new KubeletAuth({ nodeName: "n", authenticator, authorizer: new AlwaysAllowAuthorizer() });
    expect(await auth.check({ method: "GET", path: "/pods" })).toEqual({
      allowed: false,
      status: 401,
      message: "Unauthorized",
    });
  });

  it("tries the specific subresource, then proxy", async () => {
    const z = only("proxy");
    const auth = new KubeletAuth({ nodeName: "n", authenticator, authorizer: z });
    const r = await auth.check({ method: "GET", path: "/pods", authorization: "Bearer t1" });
    expect(r).toMatchObject({ allowed: true, user: { username: "bob" } });
    expect(z.asked).toEqual(["pods", "proxy"]);
  });

  it("answers 403 with kubelet's message when no attribute is allowed", async () => {
    const auth = new KubeletAuth({ nodeName: "n", authenticator, authorizer: only("metrics") });
    expect(await auth.check({ method: "GET", path: "/stats/summary", authorization: "Bearer t1" })).toEqual({
      allowed: false,
      status: 403,
      message: "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[stats])\n",
    });
  });

  it("answers 500 when the authorizer fails", async () => {
    const failing: KubeletAuthorizer = { authorize: () => Promise.reject(new Error("down")) };
    const auth = new KubeletAuth({ nodeName: "n", authenticator, authorizer: failing });
    const r = await auth.check({ method: "POST", path: "/exec/a/b/c", authorization: "Bearer t1" });
    expect(r).toEqual({
      allowed: false,
      status: 500,
      message: "Authorization error (user=bob, verb=create, resource=nodes, subresource=proxy)",
    });
  });
});
