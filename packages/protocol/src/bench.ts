/**
 * The one benchmark convention of every package: a bench module default-exports a function that
 * returns rows; `npm run bench` prints them as a table, or as JSON lines with `--json`.
 */
export interface BenchRow {
  package: string;
  metric: string;
  value: number;
  unit: string;
  /** Human-readable target, e.g. ">= 5000"; undefined when the metric is informative only. */
  target?: string | undefined;
  /** Whether the target is met; undefined when there is no target. */
  pass?: boolean | undefined;
}

export interface BenchContext {
  /** Smaller sizes and fewer repetitions, for a quick check. */
  quick: boolean;
  log: (line: string) => void;
}

export type BenchModule = (ctx: BenchContext) => Promise<BenchRow[]>;

/** Runs `fn` `repeats` times (after one warm-up) and returns the median duration in milliseconds. */
export async function medianMs(repeats: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  return times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
}
