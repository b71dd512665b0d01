import {
  connectFromNetns,
  createNetns,
  createVethPair,
  destroyAll,
  startNetnsServer,
} from "@worknode/testing";
import { afterAll, expect, it } from "vitest";

afterAll(() => destroyAll()); // removes everything created below, even after failures

it("REJECT inside a namespace refuses the connection", async () => {
  const client = await createNetns("client"); // wn-client-<random>
  const server = await createNetns("server");
  await createVethPair(client, server, { addressA: "10.231.0.1/24", addressB: "10.231.0.2/24" });
  await startNetnsServer(server, { protocol: "tcp", port: 8080, reply: "server-1" });

  expect(await connectFromNetns(client, { protocol: "tcp", host: "10.231.0.2", port: 8080 })).toEqual({
    ok: true,
    reply: "server-1",
  });

  await server.exec("iptables", ["-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "REJECT"]);
  expect(await connectFromNetns(client, { protocol: "tcp", host: "10.231.0.2", port: 8080 })).toEqual({
    ok: false,
    error: "ECONNREFUSED",
  });
});
