/**
 * Where a node keeps the blocks it committed, with their commits, to serve block sync. The
 * LevelDB store implements the same interface.
 */
import type { SyncedBlock } from "./block.ts";

export interface BlockStore<Tx> {
  /** The highest stored height; 0 when empty. */
  latestHeight(): Promise<number>;
  get(height: number): Promise<SyncedBlock<Tx> | undefined>;
  /** Stores the block of the next height. */
  put(entry: SyncedBlock<Tx>): Promise<void>;
}

export class MemoryBlockStore<Tx> implements BlockStore<Tx> {
  private readonly blocks = new Map<number, SyncedBlock<Tx>>();
  private latest = 0;

  async latestHeight(): Promise<number> {
    return this.latest;
  }

  async get(height: number): Promise<SyncedBlock<Tx> | undefined> {
    return this.blocks.get(height);
  }

  async put(entry: SyncedBlock<Tx>): Promise<void> {
    const height = entry.block.header.height;
    this.blocks.set(height, entry);
    if (height > this.latest) this.latest = height;
  }
}
