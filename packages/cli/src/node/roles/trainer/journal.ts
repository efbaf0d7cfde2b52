/**
 * The trainer's durable memory, one JSON file per round under `<network>/trainer/rounds/`: the
 * weights id and salt are written (fsynced, atomically) after the weights' chunks are stored and
 * before the commitment is sent, so a trainer killed at any later point still reveals after a
 * restart, and never sends a commitment it could not open.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { listDir, prepareTempDir, writeFileAtomic } from "../../blobs/files.ts";

export type TrainerOutcome = "rewarded" | "slashed" | "failed_round" | "missed";

export interface RoundEntry {
  round: number;
  baseWeightsId: string;
  weightsId: string;
  /** Hex of the 32-byte salt. */
  salt: string;
  behaviour: "honest" | "base" | "poison";
  examples: number;
  steps: number;
  /** Mean loss of the last steps (NaN-free; 0 for the base behaviour). */
  finalLoss: number;
  trainedAtHeight: number;
  commitTx?: string;
  revealTx?: string;
  outcome?: TrainerOutcome;
  canonical?: boolean;
}

export class TrainerJournal {
  readonly dir: string;
  readonly #tmp: string;
  readonly #entries = new Map<number, RoundEntry>();

  private constructor(dir: string) {
    this.dir = dir;
    this.#tmp = join(dir, ".tmp");
  }

  static async open(networkRoot: string): Promise<TrainerJournal> {
    const journal = new TrainerJournal(join(networkRoot, "trainer", "rounds"));
    await mkdir(journal.dir, { recursive: true });
    await prepareTempDir(journal.#tmp);
    for (const name of await listDir(journal.dir)) {
      const m = /^round-([0-9]+)\.json$/.exec(name);
      if (!m) continue;
      try {
        const entry = JSON.parse(await readFile(join(journal.dir, name), "utf8")) as RoundEntry;
        if (entry.round === Number(m[1]) && /^[0-9a-f]{64}$/.test(entry.salt)) {
          journal.#entries.set(entry.round, entry);
        }
      } catch {
        // Written atomically: an unreadable file was not written by us; ignore it.
      }
    }
    return journal;
  }

  get(round: number): RoundEntry | undefined {
    return this.#entries.get(round);
  }

  /** Every round entry, latest first. */
  entries(): RoundEntry[] {
    return [...this.#entries.values()].sort((a, b) => b.round - a.round);
  }

  async put(entry: RoundEntry): Promise<void> {
    const bytes = new TextEncoder().encode(`${JSON.stringify(entry, null, 2)}\n`);
    await writeFileAtomic(this.#tmp, this.dir, join(this.dir, `round-${entry.round}.json`), bytes);
    this.#entries.set(entry.round, entry);
  }

  async update(round: number, patch: Partial<RoundEntry>): Promise<RoundEntry | undefined> {
    const entry = this.#entries.get(round);
    if (!entry) return undefined;
    const next = { ...entry, ...patch };
    await this.put(next);
    return next;
  }
}
