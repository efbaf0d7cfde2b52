/**
 * One generation at a time (a model on a CPU backend is not faster run twice at once); others wait
 * in a bounded first-in first-out queue. A full queue is a 429 with a Retry-After estimated from
 * recent generation times; a waiter whose client goes away leaves the queue.
 */
import { OpenAIError } from "./errors.ts";

interface Waiter {
  signal: AbortSignal;
  resolve: (release: () => void) => void;
  reject: (err: unknown) => void;
  onAbort: () => void;
}

export class GenerationQueue {
  readonly #maxWaiting: number;
  readonly #waiting: Waiter[] = [];
  #running = false;
  /** Mean generation time, smoothed, for Retry-After. */
  #meanMs = 1000;

  constructor(maxWaiting: number) {
    this.#maxWaiting = maxWaiting;
  }

  get running(): number {
    return this.#running ? 1 : 0;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Waits for the slot; call the returned function when done with it. `first` goes ahead of every
   * waiter and is never refused for a full queue (the server's own work, such as switching models).
   */
  acquire(signal: AbortSignal, first = false): Promise<() => void> {
    signal.throwIfAborted();
    if (!this.#running) {
      this.#running = true;
      return Promise.resolve(this.#release());
    }
    if (!first && this.#waiting.length >= this.#maxWaiting) {
      const retryAfter = Math.max(1, Math.ceil(((this.#waiting.length + 1) * this.#meanMs) / 1000));
      return Promise.reject(
        new OpenAIError(
          429,
          "queue_full",
          `the server is busy: ${this.#waiting.length} requests are waiting`,
          {
            meta: { retryAfter },
          },
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        signal,
        resolve,
        reject,
        onAbort: () => {
          const i = this.#waiting.indexOf(waiter);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      if (first) this.#waiting.unshift(waiter);
      else this.#waiting.push(waiter);
    });
  }

  #release(): () => void {
    const started = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#meanMs = 0.8 * this.#meanMs + 0.2 * (performance.now() - started);
      const next = this.#waiting.shift();
      if (!next) {
        this.#running = false;
        return;
      }
      next.signal.removeEventListener("abort", next.onAbort);
      next.resolve(this.#release());
    };
  }
}
