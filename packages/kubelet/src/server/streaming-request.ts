/**
 * Parsing of the kubelet's streaming endpoints, as kubelet routes them:
 *
 * - `/exec/<namespace>/<pod>[/<uid>]/<container>?command=…&input=1&output=1&error=1&tty=1`
 * - `/attach/<namespace>/<pod>[/<uid>]/<container>?input=1&output=1&error=1&tty=1`
 * - `/portForward/<namespace>/<pod>[/<uid>]`
 *
 * The stream flags are the API server's exec parameters (`input` = stdin,
 * `output` = stdout, `error` = stderr, `tty`), on only when their value is
 * `1` (what the API server sends); `tty` turns stderr off; at least one of
 * stdin, stdout and stderr must be requested.
 *
 * @module
 */

/** Query parameter asking for stdin. */
export const EXEC_STDIN_PARAM = "input";
/** Query parameter asking for stdout. */
export const EXEC_STDOUT_PARAM = "output";
/** Query parameter asking for stderr. */
export const EXEC_STDERR_PARAM = "error";
/** Query parameter asking for a TTY. */
export const EXEC_TTY_PARAM = "tty";
/** Query parameter carrying the command, once per argument. */
export const EXEC_COMMAND_PARAM = "command";

/** A request that cannot be served, with its HTTP status. */
export class StreamingRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "StreamingRequestError";
  }
}

/** Which streams an exec / attach session uses. */
export interface StreamFlags {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly tty: boolean;
}

/** A parsed streaming request. */
export type StreamingRequest =
  | {
      readonly kind: "exec" | "attach";
      readonly namespace: string;
      readonly pod: string;
      readonly uid?: string;
      readonly container: string;
      /** The command (exec only). */
      readonly command: readonly string[];
      readonly streams: StreamFlags;
    }
  | {
      readonly kind: "portForward";
      readonly namespace: string;
      readonly pod: string;
      readonly uid?: string;
      /** Ports named in the query (`port=`), for WebSocket clients; SPDY clients name them per stream. */
      readonly ports: readonly number[];
    };

function segments(rest: string): string[] {
  return rest.split("/").map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
}

/**
 * kubelet's `remotecommand.NewOptions`: the stream flags of a query.
 * @throws StreamingRequestError (400) when no stream is requested
 */
export function parseStreamFlags(params: URLSearchParams): StreamFlags {
  const on = (name: string) => params.get(name) === "1";
  const tty = on(EXEC_TTY_PARAM);
  const stdin = on(EXEC_STDIN_PARAM);
  const stdout = on(EXEC_STDOUT_PARAM);
  const stderr = on(EXEC_STDERR_PARAM) && !tty;
  if (!stdin && !stdout && !stderr) {
    throw new StreamingRequestError(400, "you must specify at least 1 of stdin, stdout, stderr");
  }
  return { stdin, stdout, stderr, tty };
}

/** Whether a path is one of the streaming endpoints. */
export function isStreamingPath(path: string): boolean {
  return /^\/(exec|attach|portForward)(\/|$)/.test(path);
}

/**
 * Parses a streaming request.
 * @throws StreamingRequestError 404 for a malformed path, 400 for bad parameters
 */
export function parseStreamingRequest(path: string, params: URLSearchParams): StreamingRequest {
  const m = /^\/(exec|attach|portForward)\/(.*)$/.exec(path);
  if (!m) throw new StreamingRequestError(404, "404 page not found");
  const kind = m[1] as "exec" | "attach" | "portForward";
  const parts = segments(m[2] ?? "");
  if (parts.some((p) => p === "")) throw new StreamingRequestError(404, "404 page not found");
  if (kind === "portForward") {
    if (parts.length !== 2 && parts.length !== 3) throw new StreamingRequestError(404, "404 page not found");
    const ports: number[] = [];
    for (const raw of params.getAll("port")) {
      for (const p of raw.split(",")) {
        const n = Number(p);
        if (!Number.isInteger(n) || n < 1 || n > 65535) {
          throw new StreamingRequestError(400, `invalid port ${JSON.stringify(p)}`);
        }
        ports.push(n);
      }
    }
    return {
      kind,
      namespace: parts[0]!,
      pod: parts[1]!,
      ...(parts.length === 3 ? { uid: parts[2]! } : {}),
      ports,
    };
  }
  if (parts.length !== 3 && parts.length !== 4) throw new StreamingRequestError(404, "404 page not found");
  const streams = parseStreamFlags(params);
  const command = kind === "exec" ? params.getAll(EXEC_COMMAND_PARAM) : [];
  if (kind === "exec" && command.length === 0) throw new StreamingRequestError(400, "command is required");
  return {
    kind,
    namespace: parts[0]!,
    pod: parts[1]!,
    ...(parts.length === 4 ? { uid: parts[2]! } : {}),
    container: parts[parts.length - 1]!,
    command,
    streams,
  };
}
