/**
 * Starting a small HTTP endpoint (metrics, health) on a given address.
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { UnavailableError } from "./errors.js";

/** A running HTTP endpoint. */
export interface HttpEndpoint {
  /** Actual bound address and port. */
  readonly address: { host: string; port: number };
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/**
 * Listens on `host:port` with `handler`.
 * @param what what is served, for the error message (for example `metrics`)
 * @throws UnavailableError when the address cannot be bound
 */
export async function listenHttp(
  host: string,
  port: number,
  what: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<HttpEndpoint> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new UnavailableError(`${host}:${port}`, `cannot serve ${what} on ${host}:${port}: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    address: { host: addr.address, port: addr.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
