import { ConfigError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { parseCriEndpoint } from "../src/endpoint.js";

describe("parseCriEndpoint", () => {
  it("accepts unix:///path", () => {
    expect(parseCriEndpoint("unix:///run/containerd/containerd.sock")).toEqual({
      kind: "unix",
      canonical: "unix:///run/containerd/containerd.sock",
      grpcTarget: "unix:///run/containerd/containerd.sock",
      socketPath: "/run/containerd/containerd.sock",
    });
  });

  it("accepts a bare absolute path and unix:/path, and normalises double slashes", () => {
    expect(parseCriEndpoint("/run/crio/crio.sock").canonical).toBe("unix:///run/crio/crio.sock");
    expect(parseCriEndpoint("unix:/run/crio/crio.sock").socketPath).toBe("/run/crio/crio.sock");
    expect(parseCriEndpoint(" unix:////run//x.sock ").socketPath).toBe("/run/x.sock");
  });

  it("accepts tcp://host:port as a dns target", () => {
    expect(parseCriEndpoint("tcp://127.0.0.1:10010")).toEqual({
      kind: "tcp",
      canonical: "tcp://127.0.0.1:10010",
      grpcTarget: "dns:127.0.0.1:10010",
      host: "127.0.0.1",
      port: 10010,
    });
    expect(parseCriEndpoint("tcp://[::1]:9000").grpcTarget).toBe("dns:[::1]:9000");
  });

  it.each([
    ["", /empty/],
    ["relative.sock", /unsupported scheme/],
    ["unix://relative.sock", /absolute/],
    ["npipe:////./pipe/containerd", /unsupported scheme/],
    ["http://127.0.0.1:1", /unsupported scheme/],
    ["tcp://127.0.0.1", /tcp:\/\/host:port/],
    ["tcp://127.0.0.1:70000", /tcp:\/\/host:port/],
    ["tcp:127.0.0.1:80", /tcp:\/\/host:port/],
    ["unix:///run/", /directory/],
    [`/${"a".repeat(120)}.sock`, /longer than 107/],
  ])("rejects %j", (endpoint, msg) => {
    expect(() => parseCriEndpoint(endpoint)).toThrow(ConfigError);
    expect(() => parseCriEndpoint(endpoint)).toThrow(msg);
  });
});
