/**
 * The daemon's logger: one line per event on stderr (stdout stays for results), with a level
 * filter and a child logger per module, e.g. `12:00:01.123 INFO  ledger: committed height=7`.
 * It satisfies the host's HostLogger, so every package logs through it.
 */
import type { LogLevel } from "./config.ts";

export interface Logger {
  debug(message: string, context?: Record<string, unknown>): void;
  info(message: string, context?: Record<string, unknown>): void;
  warn(message: string, context?: Record<string, unknown>): void;
  error(message: string, context?: Record<string, unknown>): void;
  child(module: string): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

function format(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]{1,200}$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stderr.write(line),
  module = "node",
): Logger {
  const min = RANK[level];
  const log =
    (at: Exclude<LogLevel, "silent">) =>
    (message: string, context: Record<string, unknown> = {}): void => {
      if (RANK[at] < min) return;
      const time = new Date().toISOString().slice(11, 23);
      const fields = Object.entries(context)
        .map(([k, v]) => ` ${k}=${format(v)}`)
        .join("");
      write(`${time} ${at.toUpperCase().padEnd(5)} ${module}: ${message}${fields}\n`);
    };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    child: (name) => createLogger(level, write, name),
  };
}
