import type { Secret } from "@worknode/core";
import { describe, expect, it } from "vitest";
import {
  keyringEntriesFromSecret,
  lookupCredentials,
  normalizeRegistryKey,
  registryKeyMatches,
  splitImage,
} from "../../src/api-objects/credential-keyring.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function dockerConfigJson(auths: Record<string, unknown>): Secret {
  return {
    type: "kubernetes.io/dockerconfigjson",
    metadata: { name: "pull" },
    data: { ".dockerconfigjson": b64(JSON.stringify({ auths })) },
  };
}

describe("credential keyring", () => {
  it("normalizes registry keys like kubelet", () => {
    expect(normalizeRegistryKey("registry.example.com")).toBe("registry.example.com");
    expect(normalizeRegistryKey("https://registry.example.com/v1/")).toBe("registry.example.com");
    expect(normalizeRegistryKey("http://127.0.0.1:5000/v2/team")).toBe("127.0.0.1:5000/team");
    expect(normalizeRegistryKey("https://index.docker.io/v1/")).toBe("docker.io");
    expect(normalizeRegistryKey("*.example.com/org/")).toBe("*.example.com/org");
  });

  it("splits images into registry host and repository", () => {
    expect(splitImage("busybox")).toEqual({ host: "docker.io", path: "library/busybox" });
    expect(splitImage("user/app:1.0")).toEqual({ host: "docker.io", path: "user/app" });
    expect(splitImage("127.0.0.1:5000/team/app@sha256:abc")).toEqual({
      host: "127.0.0.1:5000",
      path: "team/app",
    });
    expect(splitImage("localhost/app:v1")).toEqual({ host: "localhost", path: "app" });
  });

  it("matches hosts with per-part globs, equal ports and path prefixes", () => {
    expect(registryKeyMatches("registry.example.com", "registry.example.com/a/b:1")).toBe(true);
    expect(registryKeyMatches("*.example.com", "registry.example.com/a")).toBe(true);
    expect(registryKeyMatches("*.example.com", "example.com/a")).toBe(false);
    expect(registryKeyMatches("*.example.com", "a.b.example.com/a")).toBe(false);
    expect(registryKeyMatches("127.0.0.1:5000", "127.0.0.1:5000/app")).toBe(true);
    expect(registryKeyMatches("127.0.0.1:5000", "127.0.0.1/app")).toBe(false);
    expect(registryKeyMatches("registry.example.com/team", "registry.example.com/team/app")).toBe(true);
    expect(registryKeyMatches("registry.example.com/team", "registry.example.com/other/app")).toBe(false);
    expect(registryKeyMatches("docker.io", "busybox:1.36")).toBe(true);
  });

  it("reads dockerconfigjson (username/password or auth) and legacy dockercfg secrets", () => {
    const json = keyringEntriesFromSecret(
      dockerConfigJson({
        "registry.example.com": { username: "u", password: "p" },
        "https://other.example.com/v1/": { auth: b64("joe:pa:ss") },
      }),
    );
    expect(json.map((e) => [e.key, e.auth.username, e.auth.password, e.auth.serverAddress])).toEqual([
      ["registry.example.com", "u", "p", "registry.example.com"],
      ["other.example.com", "joe", "pa:ss", "https://other.example.com/v1/"],
    ]);
    const legacy = keyringEntriesFromSecret({
      type: "kubernetes.io/dockercfg",
      metadata: { name: "old" },
      data: { ".dockercfg": b64(JSON.stringify({ "legacy.example.com": { auth: b64("a:b") } })) },
    });
    expect(legacy.map((e) => [e.key, e.auth.username, e.auth.password])).toEqual([
      ["legacy.example.com", "a", "b"],
    ]);
    expect(
      keyringEntriesFromSecret({ type: "Opaque", metadata: { name: "x" }, data: { k: b64("v") } }),
    ).toEqual([]);
    expect(
      keyringEntriesFromSecret({
        type: "kubernetes.io/dockerconfigjson",
        metadata: { name: "broken" },
        data: { ".dockerconfigjson": b64("{not json") },
      }),
    ).toEqual([]);
  });

  it("returns matching credentials most specific first, none for other registries", () => {
    const entries = keyringEntriesFromSecret(
      dockerConfigJson({
        "registry.example.com": { username: "host", password: "1" },
        "registry.example.com/team": { username: "team", password: "2" },
        "*.example.com": { username: "glob", password: "3" },
      }),
    );
    expect(lookupCredentials("registry.example.com/team/app:1", entries).map((a) => a.username)).toEqual([
      "team",
      "host",
      "glob",
    ]);
    expect(lookupCredentials("registry.example.com/else/app", entries).map((a) => a.username)).toEqual([
      "host",
      "glob",
    ]);
    expect(lookupCredentials("quay.io/app", entries)).toEqual([]);
  });
});
