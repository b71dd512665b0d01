/**
 * Registry credentials from a pod's `imagePullSecrets`, matched to an image the
 * way kubelet's credential keyring (pkg/credentialprovider) does:
 *
 * - `kubernetes.io/dockerconfigjson` secrets hold `{"auths": {<registry>: {...}}}`,
 *   legacy `kubernetes.io/dockercfg` ones `{<registry>: {...}}`; an entry has
 *   `username` / `password`, or `auth` (base64 `user:password`), and may have
 *   `identitytoken` / `registrytoken`;
 * - a registry key is schemeless or `http(s)://`; a `/v1/` or `/v2/` path prefix
 *   is dropped, the rest of the path must prefix the image's repository path;
 *   the host may use globs per dot-separated part (`*.example.com`), and the
 *   port must be equal;
 * - images without a registry host are Docker Hub's (`docker.io`, also
 *   matched by keys for `index.docker.io`);
 * - matches come most specific (longest key) first, each secret's credentials
 *   in secret order; kubelet tries them in turn, and pulls anonymously when none
 *   match.
 *
 * @module
 */
import type { Secret } from "@worknode/core";

/** CRI `AuthConfig` as the kubelet passes it to `PullImage`. */
export interface RegistryAuth {
  readonly username: string;
  readonly password: string;
  readonly auth: string;
  readonly serverAddress: string;
  readonly identityToken: string;
  readonly registryToken: string;
}

/** One registry entry of a keyring. */
export interface KeyringEntry {
  /** Normalized key: `host[:port][/path]`. */
  readonly key: string;
  readonly auth: RegistryAuth;
}

/** The Docker Hub host images without a registry are pulled from. */
export const DEFAULT_REGISTRY_HOST = "docker.io";

interface DockerConfigEntry {
  username?: string;
  password?: string;
  auth?: string;
  identitytoken?: string;
  registrytoken?: string;
}

function decodeBase64(s: string | undefined): string {
  return s ? Buffer.from(s, "base64").toString("utf8") : "";
}

/** Normalizes a registry key (see the module notes); `undefined` when it cannot be parsed. */
export function normalizeRegistryKey(location: string): string | undefined {
  let value = location.trim();
  if (!/^https?:\/\//.test(value)) value = `https://${value}`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  let path = decodeURIComponent(url.pathname);
  if (path.startsWith("/v2/") || path.startsWith("/v1/")) path = path.slice(3);
  path = path.replace(/\/+$/, "").replace(/\/+/g, "/");
  let host = url.host;
  if (host === "index.docker.io" || host === "registry-1.docker.io") host = DEFAULT_REGISTRY_HOST;
  return path && path !== "/" ? `${host}${path.startsWith("/") ? "" : "/"}${path}` : host;
}

function toAuth(server: string, e: DockerConfigEntry): RegistryAuth {
  let username = e.username ?? "";
  let password = e.password ?? "";
  if (!username && !password && e.auth) {
    const text = decodeBase64(e.auth);
    const i = text.indexOf(":");
    if (i > 0) {
      username = text.slice(0, i);
      password = text.slice(i + 1);
    }
  }
  return {
    username,
    password,
    auth: "",
    serverAddress: server,
    identityToken: e.identitytoken ?? "",
    registryToken: e.registrytoken ?? "",
  };
}

/** The keyring entries of one pull secret (unknown types and unparsable data give none). */
export function keyringEntriesFromSecret(secret: Secret): KeyringEntry[] {
  const data = secret.data ?? {};
  let entries: Record<string, DockerConfigEntry> | undefined;
  try {
    if (secret.type === "kubernetes.io/dockerconfigjson" || data[".dockerconfigjson"]) {
      const cfg = JSON.parse(decodeBase64(data[".dockerconfigjson"])) as {
        auths?: Record<string, DockerConfigEntry>;
      };
      entries = cfg.auths;
    } else if (secret.type === "kubernetes.io/dockercfg" || data[".dockercfg"]) {
      entries = JSON.parse(decodeBase64(data[".dockercfg"])) as Record<string, DockerConfigEntry>;
    }
  } catch {
    return [];
  }
  const out: KeyringEntry[] = [];
  for (const [server, e] of Object.entries(entries ?? {})) {
    const key = normalizeRegistryKey(server);
    if (key && e && typeof e === "object") out.push({ key, auth: toAuth(server, e) });
  }
  return out;
}

/** Splits an image reference into registry host and repository path (`docker.io` for Hub images). */
export function splitImage(image: string): { host: string; path: string } {
  let name = image;
  const at = name.indexOf("@");
  if (at >= 0) name = name.slice(0, at);
  const slash = name.indexOf("/");
  const first = slash >= 0 ? name.slice(0, slash) : "";
  let host: string;
  let rest: string;
  if (slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    host = first;
    rest = name.slice(slash + 1);
  } else {
    host = DEFAULT_REGISTRY_HOST;
    rest = slash >= 0 ? name : `library/${name}`;
  }
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) rest = rest.slice(0, colon);
  if (host === "index.docker.io" || host === "registry-1.docker.io") host = DEFAULT_REGISTRY_HOST;
  return { host, path: rest };
}

function globToRegExp(glob: string): RegExp {
  const re = glob
    .replace(/[.+^${}()|\\]/g, "\\$&")
    .replace(/\*/g, "[^.]*")
    .replace(/\?/g, "[^.]");
  return new RegExp(`^${re}$`);
}

function splitHostPort(host: string): { name: string; port: string } {
  const m = /^(.*?)(?::(\d+))?$/.exec(host);
  return { name: m?.[1] ?? host, port: m?.[2] ?? "" };
}

/** kubelet's `URLsMatch`: does a normalized key (possibly with globs) match an image? */
export function registryKeyMatches(key: string, image: string): boolean {
  const slash = key.indexOf("/");
  const keyHost = slash >= 0 ? key.slice(0, slash) : key;
  const keyPath = slash >= 0 ? key.slice(slash + 1) : "";
  const target = splitImage(image);
  const k = splitHostPort(keyHost);
  const t = splitHostPort(target.host);
  if (k.port !== t.port) return false;
  const kp = k.name.split(".");
  const tp = t.name.split(".");
  if (kp.length !== tp.length) return false;
  for (let i = 0; i < kp.length; i++) if (!globToRegExp(kp[i] ?? "").test(tp[i] ?? "")) return false;
  if (!keyPath) return true;
  return target.path.startsWith(keyPath);
}

/**
 * The credentials to try for an image, best match first (see the module notes).
 */
export function lookupCredentials(image: string, entries: readonly KeyringEntry[]): RegistryAuth[] {
  const order = entries.map((e, i) => ({ e, i }));
  order.sort((a, b) => b.e.key.length - a.e.key.length || a.i - b.i);
  return order.filter(({ e }) => registryKeyMatches(e.key, image)).map(({ e }) => e.auth);
}
