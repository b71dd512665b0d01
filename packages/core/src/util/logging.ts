/**
 * Structured logging through pino.
 *
 * @module
 */
import { type DestinationStream, type Logger as PinoLogger, pino } from "pino";

/** The logger type every worknode component takes: a pino logger. */
export type Logger = PinoLogger;

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Component name, logged as `name`. */
  readonly name?: string;
  /** Minimum level; default `info`, or `$WORKNODE_LOG_LEVEL` when set. */
  readonly level?: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  /** Where to write JSON lines; default standard error. */
  readonly destination?: DestinationStream;
}

/** Creates a JSON logger writing to standard error (or `destination`). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? (process.env.WORKNODE_LOG_LEVEL as LoggerOptions["level"]) ?? "info";
  const opts = { level, ...(options.name ? { name: options.name } : {}) };
  return pino(opts, options.destination ?? pino.destination({ fd: 2, sync: true }));
}

/** A logger that discards everything (the default of library components). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
