/**
 * Ends streamed text at the first of some stop strings without ever printing part of one: text that
 * could be the start of a stop string is held back until the next piece decides it.
 */
export class StopText {
  readonly #stops: readonly string[];
  #held = "";

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s !== "");
  }

  /** The text that is safe to print now, and whether a stop string was reached (its text is dropped). */
  push(piece: string): { text: string; stopped: boolean } {
    const text = this.#held + piece;
    let cut = -1;
    for (const stop of this.#stops) {
      const i = text.indexOf(stop);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.#held = "";
      return { text: text.slice(0, cut), stopped: true };
    }
    let hold = 0;
    for (const stop of this.#stops) {
      for (let k = Math.min(stop.length - 1, text.length); k > hold; k--) {
        if (text.endsWith(stop.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    this.#held = text.slice(text.length - hold);
    return { text: text.slice(0, text.length - hold), stopped: false };
  }

  /** What is still held back when generation ends for another reason. */
  flush(): string {
    const held = this.#held;
    this.#held = "";
    return held;
  }
}
