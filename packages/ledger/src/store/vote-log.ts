/**
 * A validator's log of every vote (and proposal) it signed. `record` writes with fsync and must
 * resolve before the signed message leaves the process; it refuses a different vote for the same
 * height, round and type, also after a restart — so a crash can never make a validator
 * double-sign.
 */
import { decodeEntry, encodeEntry } from "../state/codec.ts";
import type { DbController } from "./db.ts";
import { StoreError } from "./errors.ts";

export const VOTE_PREFIX = 0x04;

/** What is signed: consensus's vote and proposal payloads have this shape. */
export interface SignedStep {
  type: string;
  height: number;
  round: number;
}

function voteKey(height: number, round: number, type: string): Uint8Array {
  const t = new TextEncoder().encode(type);
  const key = new Uint8Array(1 + 8 + 4 + t.length);
  const view = new DataView(key.buffer);
  key[0] = VOTE_PREFIX;
  view.setBigUint64(1, BigInt(height));
  view.setUint32(9, round);
  key.set(t, 13);
  return key;
}

export class VoteLog {
  private readonly db: DbController;
  /** Serialises records, so two concurrent conflicting votes cannot both pass the check. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Every vote below this height is pruned already (0 until the first prune of this process). */
  private prunedBelow = 0;

  constructor(db: DbController) {
    this.db = db;
  }

  /** Resolves once `vote` is durably logged; rejects with VOTE_CONFLICT if it conflicts. */
  record<T extends SignedStep>(vote: T): Promise<void> {
    const next = this.queue.then(() => this.recordNow(vote));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async recordNow(vote: SignedStep): Promise<void> {
    if (
      !Number.isSafeInteger(vote.height) ||
      vote.height < 0 ||
      !Number.isSafeInteger(vote.round) ||
      vote.round < 0
    ) {
      throw new StoreError("VOTE_CONFLICT", "a vote needs a non-negative height and round");
    }
    const key = voteKey(vote.height, vote.round, vote.type);
    const bytes = encodeEntry(vote);
    const existing = await this.db.get(key);
    if (existing) {
      if (Buffer.compare(existing, bytes) === 0) return;
      throw new StoreError(
        "VOTE_CONFLICT",
        `refusing to sign a second ${vote.type} at height ${vote.height}, round ${vote.round}`,
        {
          details:
            "this validator already signed a different one (see its vote log); signing again would be double-signing",
          meta: { height: vote.height, round: vote.round, type: vote.type },
        },
      );
    }
    await this.db.put(key, bytes, { sync: true });
  }

  /** The vote logged for (height, round, type), if any. */
  async get(height: number, round: number, type: string): Promise<SignedStep | undefined> {
    const bytes = await this.db.get(voteKey(height, round, type));
    if (!bytes) return undefined;
    try {
      return decodeEntry(bytes) as SignedStep;
    } catch (cause) {
      throw new StoreError("STORE_CORRUPT", "a vote log entry cannot be decoded", {
        cause,
        meta: { height, round, type },
      });
    }
  }

  /**
   * Forgets votes below `height` (they can no longer conflict with anything consensus signs).
   * Consensus prunes after every block, so the scan starts where the last prune ended: from 0 it
   * would walk every deleted key LevelDB has not compacted away yet, which grew to seconds per
   * block in the network benchmark. The deletions are not synced: one lost in a crash only leaves
   * an old vote behind, for the next prune.
   */
  async prune(height: number): Promise<void> {
    if (height <= this.prunedBelow) return;
    const ops = [];
    const range = { gte: voteKey(this.prunedBelow, 0, ""), lt: voteKey(height, 0, "") };
    for await (const [key] of this.db.entries(range)) ops.push({ type: "del" as const, key });
    if (ops.length > 0) await this.db.batch(ops);
    this.prunedBelow = height;
  }
}
