import { SingleBar } from "cli-progress";

/** Progress of a long command, on stderr so stdout stays clean for results. */
export interface Progress {
  /** `done` of `total` units; `status` is a short free text (e.g. "loss 2.31"). */
  update(done: number, status?: string): void;
  /** Ends the report; call it in a finally block. */
  stop(): void;
}

export interface ProgressOptions {
  /** What is counted ("step", "sequence"). */
  unit: string;
  total: number;
  /** No output at all (--json: scripts read stdout, and stderr stays quiet). */
  silent?: boolean | undefined;
  /** Default process.stderr. */
  stream?: NodeJS.WriteStream | undefined;
  /** Least time between two plain lines when the stream is not a terminal (default 2000 ms). */
  intervalMs?: number | undefined;
}

/**
 * A bar on a terminal (cli-progress), plain lines otherwise: the first and last update and at most
 * one per interval in between, so logs of long runs stay short. Lines are written from `update`
 * itself (not a timer), because model code keeps the event loop busy between updates.
 */
export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.silent) return { update() {}, stop() {} };
  if (stream.isTTY) return terminalBar(options, stream);
  const interval = options.intervalMs ?? 2000;
  let last = Number.NEGATIVE_INFINITY;
  const started = Date.now();
  return {
    update(done, status) {
      const now = Date.now();
      if (done < options.total && now - last < interval) return;
      last = now;
      const elapsed = ((now - started) / 1000).toFixed(1);
      stream.write(`${options.unit} ${done}/${options.total}${status ? ` ${status}` : ""} (${elapsed}s)\n`);
    },
    stop() {},
  };
}

function terminalBar(options: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  const bar = new SingleBar({
    stream,
    format: `{bar} {value}/{total} ${options.unit}s | {status} | {duration_formatted} (eta {eta_formatted})`,
    hideCursor: true,
    clearOnComplete: false,
    gracefulExit: true,
  });
  bar.start(options.total, 0, { status: "" });
  return {
    update(done, status) {
      bar.update(done, { status: status ?? "" });
    },
    stop() {
      bar.stop();
    },
  };
}
