/**
 * What consensus needs from the network and from time, kept small so that an in-memory simulator
 * and the libp2p host implement the same thing.
 */
import type { Block, SyncedBlock } from "./block.ts";
import type { ConsensusMessage } from "./types.ts";

export interface ConsensusTransport<Tx> {
  /** This node's id on the transport (a peer id). */
  readonly id: string;
  /** Sends to every connected peer (gossip); never delivered back to the sender. */
  broadcast(message: ConsensusMessage<Block<Tx>>): void;
  onMessage(handler: (message: ConsensusMessage<Block<Tx>>, from: string) => void): void;
  /** Asks `peer` for committed blocks from `fromHeight` on; rejects when the peer does not answer. */
  requestBlocks(peer: string, fromHeight: number, maxBlocks: number): Promise<SyncedBlock<Tx>[]>;
  /** Serves the block requests of other nodes. */
  onBlocksRequest(handler: (fromHeight: number, maxBlocks: number) => Promise<SyncedBlock<Tx>[]>): void;
}

/** Time as consensus sees it: wall-clock on a real node, virtual in the simulator. */
export interface Timer {
  /** Milliseconds since the Unix epoch (or since the simulation began). */
  now(): number;
  /** Runs `fn` after `delayMs`; the returned function cancels it. */
  setTimeout(fn: () => void, delayMs: number): () => void;
  /**
   * Told about asynchronous work started by an event (application calls), so a simulator can wait
   * for it to finish before it advances virtual time.
   */
  track?(work: Promise<unknown>): void;
}

export const systemTimer: Timer = {
  now: () => Date.now(),
  setTimeout(fn, delayMs) {
    const handle = setTimeout(fn, delayMs);
    return () => clearTimeout(handle);
  },
};
