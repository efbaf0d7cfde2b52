/**
 * What the weights validator keeps on disk under `<network>/validator/weights/`:
 *  - `rounds/<id>/replica-<i>/`: its reference replicas of the open round (model folders, renamed
 *    into place once saved, so a folder present is whole); `rounds/<id>/submissions/<weightsId>/`:
 *    fetched submissions. A round's folder goes once the round closes.
 *  - `verdicts/round-<id>.json`: the verdict record, written (fsynced, atomically) before the
 *    `training.verdict` transaction is sent and again with its hash after, so a restarted node
 *    never judges a round twice and knows which transaction to wait for.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { listDir, prepareTempDir, writeFileAtomic } from "../../blobs/files.ts";

export interface TrainerVerdictRecord {
  /** Hex account key of the trainer. */
  trainer: string;
  weightsId: string;
  accept: boolean;
  reasons: string[];
  /** The judge's suspicion score (> 1 rejects); null when no judgement was possible. */
  score: number | null;
  /**
   * How far the model strays from the references' honest band, in honest standard deviations
   * (`Verdict.deviation` of @deepshard/validator: what ranks accepted models); null when no
   * judgement was possible, absent in records written before it was kept.
   */
  deviation?: number | null;
  /** Bit-identical to this validator's replica of the round's recipe. */
  replayed: boolean;
}

export interface VerdictRecord {
  round: number;
  /** `sending` is written before the transaction goes out, `sent` once it has a hash. */
  state: "sending" | "sent";
  /** Committed height when it was (last) sent. */
  height: number;
  tx?: string;
  attempts: number;
  /**
   * How the verdicts were reached: `judged` (fingerprints against the references), `replay` (the
   * replicas agree bit for bit, so only the exact result is honest), `certain` (the deadline came
   * before the replicas: only verdicts needing none, such as the base returned unchanged).
   */
  mode: "judged" | "replay" | "certain";
  verdicts: TrainerVerdictRecord[];
  /** Time from the start of judging to the transaction. */
  ms: number;
}

const isDir = (path: string) =>
  stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );

export class WeightsValidatorJournal {
  readonly root: string;
  readonly #verdictsDir: string;
  readonly #roundsDir: string;
  readonly #tmp: string;
  readonly #records = new Map<number, VerdictRecord>();

  private constructor(root: string) {
    this.root = root;
    this.#verdictsDir = join(root, "verdicts");
    this.#roundsDir = join(root, "rounds");
    this.#tmp = join(root, ".tmp");
  }

  static async open(networkRoot: string): Promise<WeightsValidatorJournal> {
    const journal = new WeightsValidatorJournal(join(networkRoot, "validator", "weights"));
    await mkdir(journal.#verdictsDir, { recursive: true });
    await mkdir(journal.#roundsDir, { recursive: true });
    await prepareTempDir(journal.#tmp);
    for (const name of await listDir(journal.#verdictsDir)) {
      const m = /^round-([0-9]+)\.json$/.exec(name);
      if (!m) continue;
      try {
        const record = JSON.parse(await readFile(join(journal.#verdictsDir, name), "utf8")) as VerdictRecord;
        if (record.round === Number(m[1]) && Array.isArray(record.verdicts)) {
          journal.#records.set(record.round, record);
        }
      } catch {
        // Written atomically: an unreadable file was not written by us; ignore it.
      }
    }
    return journal;
  }

  verdict(round: number): VerdictRecord | undefined {
    return this.#records.get(round);
  }

  /** Verdict records, latest round first. */
  verdicts(): VerdictRecord[] {
    return [...this.#records.values()].sort((a, b) => b.round - a.round);
  }

  async putVerdict(record: VerdictRecord): Promise<void> {
    const bytes = new TextEncoder().encode(`${JSON.stringify(record, null, 2)}\n`);
    await writeFileAtomic(
      this.#tmp,
      this.#verdictsDir,
      join(this.#verdictsDir, `round-${record.round}.json`),
      bytes,
    );
    this.#records.set(record.round, record);
  }

  roundDir(round: number): string {
    return join(this.#roundsDir, String(round));
  }

  replicaDir(round: number, index: number): string {
    return join(this.roundDir(round), `replica-${index}`);
  }

  submissionDir(round: number, weightsId: string): string {
    return join(this.roundDir(round), "submissions", weightsId);
  }

  /** Whether a finished model folder is at `dir`. */
  has(dir: string): Promise<boolean> {
    return isDir(dir);
  }

  /** A fresh folder in the round's folder (same file system as the final place); `adopt` moves it there. */
  async tempDir(round: number): Promise<string> {
    const dir = join(this.roundDir(round), `.tmp-${randomBytes(6).toString("hex")}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async adopt(tmp: string, dir: string): Promise<void> {
    if (await isDir(dir)) {
      await rm(tmp, { recursive: true, force: true });
      return;
    }
    await mkdir(join(dir, ".."), { recursive: true });
    await rename(tmp, dir);
  }

  /**
   * Removes the folders of every round but `round`, and with `temp` (at start, when nothing of this
   * process writes there) the half-written folders a killed process left in `round`'s.
   */
  async keepOnly(round: number | undefined, options: { temp: boolean }): Promise<void> {
    for (const name of await listDir(this.#roundsDir)) {
      const dir = join(this.#roundsDir, name);
      if (name !== String(round)) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      if (!options.temp) continue;
      for (const inner of await listDir(dir)) {
        if (inner.startsWith(".tmp-")) await rm(join(dir, inner), { recursive: true, force: true });
      }
    }
  }
}
