import type { AddressInfo } from "node:net";
import { createServer, type Server, type Socket } from "node:net";
import { type Clock, realClock } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTcpProbe } from "../../src/probes/tcp-probe.js";

describe("tcpSocket probe against real sockets on 127.0.0.1", () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];

  beforeAll(async () => {
    server = createServer((sock) => accepted.push(sock));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("succeeds when the port accepts, and closes its connection", async () => {
    const before = accepted.length;
    expect(await runTcpProbe("127.0.0.1", port, 1000)).toEqual({ result: "success", output: "" });
    await new Promise((r) => setTimeout(r, 20));
    expect(accepted.length).toBe(before + 1);
    const sock = accepted[before]!;
    await new Promise<void>((r) =>
      sock.readableEnded || sock.destroyed ? r() : sock.once("close", () => r()),
    );
    expect(sock.destroyed || sock.readableEnded).toBe(true);
  });

  it("fails when the connection is refused", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", () => r()));
    const freePort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const out = await runTcpProbe("127.0.0.1", freePort, 1000);
    expect(out.result).toBe("failure");
    expect(out.output).toContain(`dial tcp 127.0.0.1:${freePort}`);
    expect(out.output).toContain("ECONNREFUSED");
  });

  it("fails with an i/o timeout when the timer fires before the connection opens", async () => {
    // A clock whose timers fire in a microtask: before any socket event can arrive.
    const clock: Clock = {
      ...realClock,
      setTimeout(fn) {
        let cancelled = false;
        queueMicrotask(() => {
          if (!cancelled) fn();
        });
        return {
          cancel: () => {
            cancelled = true;
          },
        };
      },
    };
    expect(await runTcpProbe("127.0.0.1", port, 1000, clock)).toEqual({
      result: "failure",
      output: `dial tcp 127.0.0.1:${port}: i/o timeout`,
    });
  });
});
