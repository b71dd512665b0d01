/**
 * exec / attach over SPDY/3.1 (`X-Stream-Protocol-Version: v4.channel.k8s.io`), the transport
 * kubectl and crictl use: one SPDY stream per standard stream (`streamType` error, stdin,
 * stdout, stderr, resize). Unlike the WebSocket protocols the runtime serves, SPDY half-closes
 * stdin, so the command sees the end of its input.
 *
 * The streaming server (moby/spdystream) does no SPDY flow control, so neither does this client.
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import { CriStreamError, type CriStreamOperation } from "./errors.js";
import { V4_CHANNEL_PROTOCOL } from "./protocol.js";
import {
  RemoteCommandReceiver,
  type RemoteCommandSession,
  type RemoteCommandStreams,
  type RemoteCommandTransport,
  startSession,
} from "./remote-command.js";
import {
  controlStreamId,
  encodeDataFrames,
  encodePing,
  encodeSynStream,
  SPDY_FLAG_FIN,
  type SpdyFrame,
  SpdyFrameParser,
  SpdyFrameType,
  SpdyHeaderWriter,
} from "./spdy-frames.js";

/** The `streamType` of each SPDY stream of a v4 remote command, in the order kubectl creates them. */
export type SpdyStreamKind = "error" | "stdin" | "stdout" | "stderr" | "resize";

/** Which streams the server expects: exactly those of the CRI request's flags. */
export interface SpdyStreamFlags {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly tty: boolean;
}

/** The SPDY streams to create for `flags`, with their client (odd) stream ids. */
export function remoteCommandStreamIds(flags: SpdyStreamFlags): ReadonlyMap<SpdyStreamKind, number> {
  const kinds: SpdyStreamKind[] = ["error"];
  if (flags.stdin) kinds.push("stdin");
  if (flags.stdout) kinds.push("stdout");
  if (flags.stderr && !flags.tty) kinds.push("stderr");
  if (flags.tty) kinds.push("resize");
  return new Map(kinds.map((k, i) => [k, 2 * i + 1]));
}

/** Upgrades `url` to SPDY/3.1; resolves with the raw socket and any bytes read past the 101. */
function upgrade(
  url: string,
  operation: CriStreamOperation,
  signal: AbortSignal | undefined,
): Promise<{ socket: Socket; head: Buffer; protocol: string }> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      reject(
        new CriStreamError(operation, `the runtime returned an invalid streaming URL "${url}"`, {
          cause: err,
        }),
      );
      return;
    }
    const request = (parsed.protocol === "https:" ? https : http).request(parsed, {
      // GET, not kubectl's POST: Node would frame an empty POST body as a chunked "0\r\n\r\n",
      // bytes the server would then read as SPDY frames after the upgrade.
      method: "GET",
      headers: {
        Connection: "Upgrade",
        Upgrade: "SPDY/3.1",
        "X-Stream-Protocol-Version": V4_CHANNEL_PROTOCOL,
      },
      ...(signal ? { signal } : {}),
    });
    request.on("upgrade", (res, socket, head) => {
      const protocol = String(res.headers["x-stream-protocol-version"] ?? "");
      if (protocol !== V4_CHANNEL_PROTOCOL) {
        socket.destroy();
        reject(
          new CriStreamError(
            operation,
            `the server chose protocol "${protocol}", not ${V4_CHANNEL_PROTOCOL}`,
          ),
        );
        return;
      }
      resolve({ socket, head, protocol });
    });
    request.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        if (body.length < 4096) body += d;
      });
      res.on("end", () =>
        reject(
          new CriStreamError(
            operation,
            `the streaming server refused the upgrade: HTTP ${res.statusCode}${body.trim() ? `: ${body.trim()}` : ""}`,
            { httpStatus: res.statusCode },
          ),
        ),
      );
    });
    request.on("error", (err) => {
      if (signal?.aborted) reject(signal.reason);
      else
        reject(new CriStreamError(operation, `connection to ${url} failed: ${err.message}`, { cause: err }));
    });
    request.end();
  });
}

/** Writes to the socket, resolving once the bytes are flushed to the kernel. */
function write(socket: Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(bytes, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Dials an exec / attach streaming URL over SPDY/3.1 and starts the session.
 *
 * @param flags - The stream flags of the CRI request (the server waits for exactly those streams).
 * @throws CriStreamError when the upgrade fails.
 */
export async function startSpdyRemoteCommand(
  url: string,
  operation: CriStreamOperation,
  streams: RemoteCommandStreams,
  flags: SpdyStreamFlags,
): Promise<RemoteCommandSession> {
  const receiver = new RemoteCommandReceiver(operation, streams);
  const { socket, head, protocol } = await upgrade(url, operation, streams.signal);
  const ids = remoteCommandStreamIds(flags);
  const kindOf = new Map([...ids].map(([k, id]) => [id, k]));
  const parser = new SpdyFrameParser();
  let failure: Error | undefined;
  let open = true;
  const pendingFins = new Set<SpdyStreamKind>(
    [...ids.keys()].filter((k) => k === "error" || k === "stdout" || k === "stderr"),
  );

  /** The server is done with a stream (FIN, or RST_STREAM as it ends the error stream). */
  const streamEnded = (kind: SpdyStreamKind | undefined) => {
    if (!kind || !pendingFins.delete(kind)) return;
    // Like kubectl: done once the server finished the error stream and every output stream.
    if (pendingFins.size === 0) {
      receiver.closed(failure, true);
      socket.destroy();
    }
  };
  const onFrame = (frame: SpdyFrame) => {
    if (frame.kind === "data") {
      const kind = kindOf.get(frame.streamId);
      if (kind === "stdout") receiver.stdout(frame.data);
      else if (kind === "stderr") receiver.stderr(frame.data);
      else if (kind === "error") receiver.error(frame.data);
      if (frame.flags & SPDY_FLAG_FIN) streamEnded(kind);
    } else if (frame.type === SpdyFrameType.PING) {
      if (open && frame.payload.length >= 4) socket.write(encodePing(frame.payload.readUInt32BE(0)));
    } else if (frame.type === SpdyFrameType.RST_STREAM) {
      streamEnded(kindOf.get(controlStreamId(frame.payload)));
    }
  };
  const onData = (bytes: Buffer) => {
    try {
      for (const frame of parser.push(bytes)) onFrame(frame);
    } catch (err) {
      failure ??= err as Error;
      socket.destroy();
    }
  };
  const onAbort = () => {
    failure ??= streams.signal?.reason as Error;
    socket.destroy();
  };
  streams.signal?.addEventListener("abort", onAbort, { once: true });
  socket.setNoDelay(true);
  socket.on("data", onData);
  // Bytes read past the 101 response come before anything the socket emits later.
  if (head.length > 0) onData(head);
  socket.on("error", (err) => {
    failure ??= new CriStreamError(operation, `connection to ${url} broke: ${err.message}`, { cause: err });
  });
  socket.on("close", () => {
    open = false;
    streams.signal?.removeEventListener("abort", onAbort);
    receiver.closed(failure, true);
  });

  const headers = new SpdyHeaderWriter();
  const synStreams = [...ids].map(([kind, id]) => encodeSynStream(id, { streamtype: kind }, headers));
  // The error, stdout and stderr streams only carry data from the server: half-close them now.
  const halfClosed = [...ids]
    .filter(([kind]) => kind !== "stdin" && kind !== "resize")
    .map(([, id]) => encodeDataFrames(id, Buffer.alloc(0), true));
  await write(socket, Buffer.concat([...synStreams, ...halfClosed])).catch((err: Error) => {
    throw new CriStreamError(operation, `cannot open the streams on ${url}: ${err.message}`, { cause: err });
  });

  const sendOn = (kind: SpdyStreamKind, data: Buffer, fin = false) => {
    const id = ids.get(kind);
    return id === undefined || !open ? Promise.resolve() : write(socket, encodeDataFrames(id, data, fin));
  };
  const transport: RemoteCommandTransport = {
    protocol: `SPDY/3.1+${protocol}`,
    get writable() {
      return open && !socket.destroyed;
    },
    sendStdin: (data) => sendOn("stdin", data),
    endStdin: () => sendOn("stdin", Buffer.alloc(0), true),
    sendResize: (message) => sendOn("resize", message),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.destroy(),
  };
  return startSession(transport, receiver, streams);
}
