import { type Container, ContainerState, type Image, type PodSandbox, PodSandboxState } from "@worknode/cri";
import { describe, expect, it } from "vitest";
import {
  formatContainers,
  formatImages,
  formatSandboxes,
  humanDuration,
  humanSize,
  splitRepoTag,
} from "../src/commands/cri/format.js";
import { parseCriLog, tailLines } from "../src/commands/cri/logs.js";

const NOW = 1_800_000_000_000;
const ns = (msAgo: number) => BigInt(NOW - msAgo) * 1_000_000n;

describe("crictl-style formatting", () => {
  it("prints durations and sizes as go-units does", () => {
    expect(humanDuration(500)).toBe("Less than a second");
    expect(humanDuration(1000)).toBe("1 second");
    expect(humanDuration(45_000)).toBe("45 seconds");
    expect(humanDuration(90_000)).toBe("About a minute");
    expect(humanDuration(5 * 60_000)).toBe("5 minutes");
    expect(humanDuration(70 * 60_000)).toBe("About an hour");
    expect(humanDuration(5 * 3_600_000)).toBe("5 hours");
    expect(humanDuration(3 * 86_400_000)).toBe("3 days");
    expect(humanSize(999)).toBe("999B");
    expect(humanSize(2_070_000)).toBe("2.07MB");
    expect(humanSize(1_234_567_890)).toBe("1.23GB");
  });

  it("splits repository and tag after the last slash", () => {
    expect(splitRepoTag("127.0.0.1:5000/busybox:1")).toEqual({ repo: "127.0.0.1:5000/busybox", tag: "1" });
    expect(splitRepoTag("127.0.0.1:5000/busybox")).toEqual({ repo: "127.0.0.1:5000/busybox", tag: "<none>" });
  });

  it("lays out ps, pods and images with crictl's columns", () => {
    const sandbox = {
      id: "a".repeat(64),
      metadata: { name: "web", uid: "u", namespace: "default", attempt: 0 },
      state: PodSandboxState.SANDBOX_READY,
      createdAt: ns(120_000),
      labels: {},
      annotations: {},
      runtimeHandler: "",
    } as PodSandbox;
    const container = {
      id: "b".repeat(64),
      podSandboxId: sandbox.id,
      metadata: { name: "httpd", attempt: 2 },
      image: { image: "127.0.0.1:5000/busybox:1" },
      imageRef: `sha256:${"c".repeat(64)}`,
      state: ContainerState.CONTAINER_RUNNING,
      createdAt: ns(60_500),
      labels: {},
      annotations: {},
    } as unknown as Container;
    const ps = formatContainers([container], [sandbox], NOW).split("\n");
    expect(ps[0]).toMatch(
      /^CONTAINER {3,}IMAGE {3,}CREATED {3,}STATE {3,}NAME {3,}ATTEMPT {3,}POD ID {3,}POD$/,
    );
    expect(ps[1]).toMatch(
      /^b{13} {3,}c{13} {3,}About a minute ago {3,}Running {3,}httpd {3,}2 {3,}a{13} {3,}web$/,
    );
    const pods = formatSandboxes([sandbox], NOW).split("\n");
    expect(pods[1]).toMatch(/^a{13} {3,}2 minutes ago {3,}Ready {3,}web {3,}default {3,}0 {3,}\(default\)$/);
    const image = {
      id: `sha256:${"d".repeat(64)}`,
      repoTags: ["127.0.0.1:5000/busybox:1"],
      size: 2_070_000n,
    } as Image;
    const images = formatImages([image]).split("\n");
    expect(images[0]).toMatch(/^IMAGE {3,}TAG {3,}IMAGE ID {3,}SIZE$/);
    expect(images[1]).toMatch(/^127\.0\.0\.1:5000\/busybox {3,}1 {3,}d{13} {3,}2\.07MB$/);
  });
});

describe("CRI log format", () => {
  it("joins partial records per stream and skips malformed ones", () => {
    const text = [
      "2026-11-24T10:00:00.000000001Z stdout P hel",
      "2026-11-24T10:00:00.000000002Z stderr F oops",
      "2026-11-24T10:00:00.000000003Z stdout F lo",
      "garbage",
      "2026-11-24T10:00:01.000000000Z stdout F ",
      "",
    ].join("\n");
    expect(parseCriLog(text)).toEqual([
      { time: "2026-11-24T10:00:00.000000002Z", stream: "stderr", content: "oops" },
      { time: "2026-11-24T10:00:00.000000001Z", stream: "stdout", content: "hello" },
      { time: "2026-11-24T10:00:01.000000000Z", stream: "stdout", content: "" },
    ]);
    expect(tailLines([1, 2, 3], 2)).toEqual([2, 3]);
    expect(tailLines([1, 2, 3], -1)).toEqual([1, 2, 3]);
    expect(tailLines([1, 2, 3], 0)).toEqual([]);
  });
});
