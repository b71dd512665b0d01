import { ConfigError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import {
  callTimeoutMs,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CRI_TIMEOUT_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_PULL_TIMEOUT_MS,
  resolveCriClientOptions,
} from "../src/options.js";

describe("resolveCriClientOptions", () => {
  it("applies the kubelet-like defaults", () => {
    const r = resolveCriClientOptions({ endpoint: "/run/x.sock" });
    expect(r.timeoutMs).toBe(DEFAULT_CRI_TIMEOUT_MS);
    expect(DEFAULT_CRI_TIMEOUT_MS).toBe(120_000);
    expect(r.pullTimeoutMs).toBe(DEFAULT_PULL_TIMEOUT_MS);
    expect(r.connectTimeoutMs).toBe(DEFAULT_CONNECT_TIMEOUT_MS);
    expect(r.maxMessageBytes).toBe(DEFAULT_MAX_MESSAGE_BYTES);
    expect(r.endpoint.canonical).toBe("unix:///run/x.sock");
    expect(r.channelOptions["grpc.max_receive_message_length"]).toBe(16 * 1024 * 1024);
    expect(r.channelOptions["grpc.max_reconnect_backoff_ms"]).toBe(1_000);
  });

  it("keeps given values, 0 meaning no deadline", () => {
    const r = resolveCriClientOptions({
      endpoint: "unix:///x.sock",
      timeoutMs: 0,
      pullTimeoutMs: 5,
      connectTimeoutMs: 300,
      maxMessageBytes: 1024,
    });
    expect([r.timeoutMs, r.pullTimeoutMs, r.connectTimeoutMs, r.maxMessageBytes]).toEqual([0, 5, 300, 1024]);
    // Reconnect back-off is capped at half the connect wait so a waiting call sees a new attempt.
    expect(r.channelOptions["grpc.max_reconnect_backoff_ms"]).toBe(150);
  });

  it.each([
    [{ timeoutMs: -1 }, /timeoutMs/],
    [{ pullTimeoutMs: 1.5 }, /pullTimeoutMs/],
    [{ connectTimeoutMs: Number.NaN }, /connectTimeoutMs/],
    [{ maxMessageBytes: 0 }, /maxMessageBytes must be an integer >= 1/],
    [{ endpoint: "ftp://x" }, /unsupported scheme/],
  ])("rejects %j", (bad, msg) => {
    expect(() => resolveCriClientOptions({ endpoint: "/x.sock", ...bad })).toThrow(ConfigError);
    expect(() => resolveCriClientOptions({ endpoint: "/x.sock", ...bad })).toThrow(msg);
  });
});

describe("callTimeoutMs", () => {
  const r = { timeoutMs: 100, pullTimeoutMs: 900 };
  it("uses the client default, the pull default for PullImage, and none for streams", () => {
    expect(callTimeoutMs(r, "ListContainers", false, undefined)).toBe(100);
    expect(callTimeoutMs(r, "PullImage", false, undefined)).toBe(900);
    expect(callTimeoutMs(r, "GetContainerEvents", true, undefined)).toBe(0);
  });
  it("lets the call override it, and rejects negative values", () => {
    expect(callTimeoutMs(r, "PullImage", false, 7)).toBe(7);
    expect(callTimeoutMs(r, "GetContainerEvents", true, 50)).toBe(50);
    expect(() => callTimeoutMs(r, "Version", false, -1)).toThrow(ConfigError);
  });
});
