/**
 * The error base of every Deepshard package, shaped after viem's BaseError: a short line
 * for the terminal, then details, with a typed `code` that programs switch on.
 */
export interface DeepshardErrorOptions {
  /** More lines for a human: what was expected, what was seen. */
  details?: string | undefined;
  /** The lower-level error that caused this one. */
  cause?: unknown;
  /** Machine-readable context (heights, sizes, keys). */
  meta?: Record<string, unknown> | undefined;
}

export class DeepshardError<Code extends string = string> extends Error {
  override name = "DeepshardError";
  readonly code: Code;
  readonly shortMessage: string;
  readonly details: string | undefined;
  readonly meta: Record<string, unknown>;

  constructor(code: Code, shortMessage: string, options: DeepshardErrorOptions = {}) {
    const lines = [shortMessage];
    if (options.details) lines.push("", `Details: ${options.details}`);
    const causeMessage =
      options.cause instanceof Error ? options.cause.message : options.cause ? String(options.cause) : "";
    if (causeMessage && causeMessage !== options.details) lines.push(`Caused by: ${causeMessage}`);
    super(lines.join("\n"), options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = options.details;
    this.meta = options.meta ?? {};
  }

  /** Walks the cause chain; returns the first error for which `fn` is true, else the deepest. */
  walk(fn?: (err: unknown) => boolean): unknown {
    let err: unknown = this;
    for (;;) {
      if (fn?.(err)) return err;
      const next = err instanceof Error ? err.cause : undefined;
      if (next === undefined) return fn ? undefined : err;
      err = next;
    }
  }

  toJSON(): { name: string; code: string; message: string; details?: string; meta: Record<string, unknown> } {
    return {
      name: this.name,
      code: this.code,
      message: this.shortMessage,
      ...(this.details === undefined ? {} : { details: this.details }),
      meta: this.meta,
    };
  }
}

/** True when `err` is a DeepshardError, optionally with the given code. */
export function isDeepshardError(err: unknown, code?: string): err is DeepshardError {
  return err instanceof DeepshardError && (code === undefined || err.code === code);
}
