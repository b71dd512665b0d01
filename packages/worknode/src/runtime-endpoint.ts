/**
 * Reachability check of a container runtime endpoint (`unix:///path.sock`).
 *
 * @module
 */
import { connect } from "node:net";
import { ConfigError, UnavailableError } from "@worknode/core";

/** Turns `unix:///run/x.sock` (or a bare absolute path) into the socket path. */
export function runtimeSocketPath(endpoint: string): string {
  if (endpoint.startsWith("unix://")) return endpoint.slice("unix://".length);
  if (endpoint.startsWith("/")) return endpoint;
  throw new ConfigError(
    `--container-runtime-endpoint: "${endpoint}" is not a unix socket endpoint (expected unix:///path/to/runtime.sock)`,
  );
}

/** Resolves when the runtime's socket accepts a connection; throws {@link UnavailableError} with the reason. */
export async function checkRuntimeEndpoint(endpoint: string, timeoutMs = 2000): Promise<void> {
  const path = runtimeSocketPath(endpoint);
  await new Promise<void>((resolve, reject) => {
    const sock = connect({ path });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        new UnavailableError(
          endpoint,
          `container runtime at ${endpoint} did not answer within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.end();
      resolve();
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        err.code === "ENOENT"
          ? "no such socket"
          : err.code === "ECONNREFUSED"
            ? "connection refused (is the runtime running?)"
            : err.code === "EACCES"
              ? "permission denied"
              : (err.code ?? err.message);
      reject(
        new UnavailableError(endpoint, `cannot reach the container runtime at ${endpoint}: ${why}`, {
          cause: err,
        }),
      );
    });
  });
}
