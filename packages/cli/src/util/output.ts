/** How a command prints: human lines on a terminal, one JSON document with --json (for scripts). */
export interface OutputOptions {
  json?: boolean | undefined;
}

export function printResult(options: OutputOptions, data: unknown, human: () => string): void {
  if (options.json) process.stdout.write(`${JSON.stringify(data, jsonReplacer)}\n`);
  else process.stdout.write(`${human()}\n`);
}

/** bigint amounts print as decimal strings and bytes as hex, so JSON output never loses precision. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  return value;
}

/**
 * One event as a JSON line, stamped with the wall-clock time (the event's own `time`, a block's,
 * wins): what `deepshard devnet` and `deepshard node start` print when stdout is not a terminal.
 */
export function eventLine(event: Record<string, unknown>): string {
  return `${JSON.stringify({ time: Date.now(), ...event }, jsonReplacer)}\n`;
}
