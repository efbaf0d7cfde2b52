import { initialState, reduce, type ViewAction, type ViewNode, type ViewState } from "./state.ts";

/**
 * Holds the view's state outside React, so that the event stream and the pollers can dispatch
 * from anywhere; listeners hear of changes at most once per `notifyMs` (a devnet emits many events
 * per block and a terminal frame per event would waste the CPU the nodes need).
 */
export class ViewStore {
  #state: ViewState;
  readonly #listeners = new Set<() => void>();
  readonly #notifyMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(title: string, nodes: ViewNode[] = [], options: { notifyMs?: number } = {}) {
    this.#state = initialState(title, nodes);
    this.#notifyMs = options.notifyMs ?? 100;
  }

  getState = (): ViewState => this.#state;

  dispatch = (action: ViewAction): void => {
    const next = reduce(this.#state, action);
    if (next === this.#state) return;
    this.#state = next;
    this.#timer ??= setTimeout(() => this.flush(), this.#notifyMs);
  };

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  };

  /** Tells the listeners now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const listener of this.#listeners) listener();
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }
}
