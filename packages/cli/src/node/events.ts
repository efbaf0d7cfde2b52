/**
 * What happens on a node, as a stream for live views: committed blocks and transaction results
 * from the ledger, and whatever the role services announce (`informant.outcome`, …). `/events`
 * serves it as server-sent events; a short history lets a reconnecting client resume by id.
 */

/** A committed block. Hashes are hex, accounts `ds1…` addresses. */
export interface BlockEvent {
  type: "block";
  height: number;
  hash: string;
  time: number;
  appHash: string;
  proposer: string;
  txs: number;
}

/** The result of one transaction of a committed block; `code` 0 is success. */
export interface TxEvent {
  type: "tx";
  hash: string;
  height: number;
  index: number;
  txType: string;
  sender: string;
  code: number;
  log: string;
}

/** Role services add their own types, named `<role>.<what>`. */
export interface RoleEvent {
  type: `${string}.${string}`;
  [key: string]: unknown;
}

export type NodeEvent = BlockEvent | TxEvent | RoleEvent;

export interface StampedEvent {
  /** Increases by one per event, from 1, for the life of the process. */
  id: number;
  event: NodeEvent;
}

export class NodeEvents {
  readonly #listeners = new Set<(e: StampedEvent) => void>();
  readonly #history: StampedEvent[] = [];
  readonly #historySize: number;
  #nextId = 1;

  constructor(historySize = 512) {
    this.#historySize = historySize;
  }

  emit(event: NodeEvent): void {
    const stamped = { id: this.#nextId++, event };
    this.#history.push(stamped);
    if (this.#history.length > this.#historySize) this.#history.shift();
    for (const listener of this.#listeners) listener(stamped);
  }

  /** Calls `listener` for every later event; returns the function that stops it. */
  subscribe(listener: (e: StampedEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The remembered events after `id` (all of them for 0). */
  since(id: number): StampedEvent[] {
    return this.#history.filter((e) => e.id > id);
  }

  get subscribers(): number {
    return this.#listeners.size;
  }
}
