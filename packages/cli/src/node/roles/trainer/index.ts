/**
 * The trainer role. After each committed block it looks at the ledger's active round and does the
 * next thing due:
 *  1. open round, no commitment yet: fetch the batch (the accepted blobs, from the informant and
 *     connected peers, each checked against its content hash) and the base weights (assembled from
 *     local chunks, else fetched by weights id), train with the round's recipe (recipe.ts) on the
 *     deterministic wasm backend, chunk the result as the base is chunked, store the chunks (the
 *     daemon's blob service then serves them to validators), write weights id + salt to the journal,
 *     and send `training.commit` with sha256(weightsId ‖ salt) before the commit deadline;
 *  2. reveal window, committed, not revealed: send `training.reveal` from the journal (also after a
 *     restart);
 *  3. round closed: record the outcome (rewarded, slashed, or a failed round).
 * Training runs on the daemon's thread: fine for the small models of a devnet.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { type Round, trainingCommitment } from "@deepshard/ledger";
import { DeepshardError, peerIdFromAccount } from "@deepshard/protocol";
import type { RequestTarget } from "@deepshard/protocol/host";
import { initBackend, loadModel, saveModel, tokenizerFor, train } from "@deepshard/tensor";
import { ApiError } from "../../api.ts";
import type { NodeConfig } from "../../config.ts";
import type { RoleContext, RoleService } from "../../service.ts";
import { chunkModel } from "../../weights-id.ts";
import { type DirectoryOptions, WeightsDirectory } from "../storage/directory.ts";
import { countReceived, ModelCache } from "../storage/models.ts";
import { registerWeightsRoutes } from "../storage/routes.ts";
import { type RoundEntry, TrainerJournal, type TrainerOutcome } from "./journal.ts";
import { roundExamples, roundTrainOptions } from "./recipe.ts";

/**
 * TEST/DEMO KNOB: "base" makes a dishonest trainer that submits the base weights unchanged (what
 * validators must catch and the end-to-end test slashes); "poison" trains on the batch plus text
 * the network never accepted (POISON_TEXT; examples/byzantine-trainer shows it slashed). Real
 * trainers run "honest".
 */
export type TrainerBehaviour = "honest" | "base" | "poison";

/** What a "poison" trainer slips into its training data, many times over. */
export const POISON_TEXT = "The Sun orbits the Earth. The Earth stands still.";
const POISON_COPIES = 64;

export interface TrainerOptions extends DirectoryOptions {
  behaviour?: TrainerBehaviour;
}

export type TrainerPhase = "commit" | "reveal" | "verdict";

export interface TrainerJob {
  round: number;
  state: "fetching" | "training" | "storing" | "done" | "failed";
  step: number;
  steps: number;
  loss: number | null;
  error: string | null;
}

/** A tx sent and not yet seen in the state: not sent again until it had time to land. */
interface Pending {
  hash: Uint8Array;
  height: number;
}

/** Blocks after which a transaction not yet in the state (and not pooled) is sent again. */
const RESEND_AFTER_BLOCKS = 3;

const pad = (n: number): string => n.toString().padStart(12, "0");
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));

export class TrainerService implements RoleService {
  readonly name = "trainer";
  readonly behaviour: TrainerBehaviour;
  readonly #options: TrainerOptions;
  #ctx: RoleContext | undefined;
  #directory: WeightsDirectory | undefined;
  #cache: ModelCache | undefined;
  #journal: TrainerJournal | undefined;
  #me = "";
  readonly #offs: (() => void)[] = [];
  readonly #pending = new Map<string, Pending>();
  #job: TrainerJob | undefined;
  #jobRun: Promise<void> | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;

  constructor(_config: NodeConfig, options: TrainerOptions = {}) {
    this.#options = options;
    this.behaviour = options.behaviour ?? "honest";
  }

  async start(ctx: RoleContext): Promise<void> {
    this.#ctx = ctx;
    this.#me = hex(ctx.account.publicKey);
    this.#journal = await TrainerJournal.open(ctx.paths.root);
    this.#directory = WeightsDirectory.acquire(ctx, this.#options);
    this.#cache = new ModelCache(ctx.paths.root, ctx.stores.chunks, ctx.stores.blobClient, this.#directory);
    await this.#cache.clean();
    registerWeightsRoutes(ctx, this.#directory);
    ctx.api.route("GET", "/trainer/status", () => this.status());
    if (this.behaviour !== "honest") {
      ctx.logger.warn("TEST KNOB: this trainer is dishonest", { behaviour: this.behaviour });
    }
    this.#offs.push(ctx.ledger.onCommit(() => this.kick()));
    this.kick();
  }

  async stop(): Promise<void> {
    for (const off of this.#offs.splice(0)) off();
    await this.#ticking?.catch(() => {});
    await this.#jobRun?.catch(() => {});
    this.#directory?.release();
  }

  /** What `deepshard trainer status` shows. */
  status() {
    const ctx = this.#ctx;
    if (!ctx) throw new ApiError(503, "NOT_RUNNING", "the trainer is not running");
    const state = ctx.ledger.state();
    const meta = state.tables.meta.get("meta")!;
    const params = state.tables.params.get("params")!;
    const round = meta.activeRound >= 0 ? state.tables.rounds.get(pad(meta.activeRound)) : undefined;
    const mine = round?.trainers[this.#me];
    return {
      address: ctx.account.address,
      behaviour: this.behaviour,
      height: meta.height,
      balance: state.tables.accounts.get(this.#me)?.balance ?? 0n,
      stake: params.training.stake,
      activeRound: round
        ? {
            id: round.id,
            phase: phaseOf(round, meta.height),
            openedAt: round.openedAt,
            commitEnd: round.commitEnd,
            revealEnd: round.revealEnd,
            verdictEnd: round.verdictEnd,
            baseWeightsId: round.baseWeightsId,
            batch: round.batch.length,
            trainers: Object.keys(round.trainers).length,
            committed: mine !== undefined,
            revealed: (mine?.weightsId ?? "") !== "",
            weightsId: this.#journal!.get(round.id)?.weightsId ?? null,
          }
        : null,
      job: this.#job ?? null,
      rounds: this.#journal!.entries().slice(0, 20),
    };
  }

  /** Looks at the ledger soon; calls during a look make one more. */
  kick(): void {
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = (async () => {
      do {
        this.#again = false;
        await this.#tick().catch((err: unknown) => {
          if (!this.#ctx?.signal.aborted)
            this.#ctx?.logger.warn("trainer step failed", { error: String(err) });
        });
      } while (this.#again && !this.#ctx?.signal.aborted);
    })().finally(() => {
      this.#ticking = undefined;
    });
  }

  async #tick(): Promise<void> {
    const ctx = this.#ctx!;
    if (ctx.signal.aborted) return;
    const state = ctx.ledger.state();
    const meta = state.tables.meta.get("meta")!;
    await this.#recordOutcomes();
    if (meta.activeRound < 0) return;
    const round = state.tables.rounds.get(pad(meta.activeRound));
    if (round?.status !== "open") return;
    const height = meta.height;
    const mine = round.trainers[this.#me];
    const entry = this.#journal!.get(round.id);
    // A node catching up after a restart sees old rounds as open: it acts once it is current.
    const current = Date.now() - meta.time < Math.max(5_000, 5 * ctx.config.blockIntervalMs);
    if (!mine) {
      // The next block is the last one that can include a commitment.
      if (height >= round.commitEnd) return;
      if (!entry) {
        if (!this.#jobRun && current) this.#startJob(round);
        return;
      }
      if (!current) return;
      await this.#send(`commit:${round.id}`, height, async () => {
        const commitment = trainingCommitment(fromHex(entry.weightsId), fromHex(entry.salt));
        const hash = await ctx.send({ type: "training.commit", round: round.id, commitment });
        await this.#journal!.update(round.id, { commitTx: hex(hash) });
        ctx.events.emit({ type: "trainer.commit", round: round.id, tx: hex(hash) });
        return hash;
      });
      return;
    }
    if (current && mine.weightsId === "" && height >= round.commitEnd && height < round.revealEnd && entry) {
      await this.#send(`reveal:${round.id}`, height, async () => {
        const hash = await ctx.send({
          type: "training.reveal",
          round: round.id,
          weightsId: fromHex(entry.weightsId),
          salt: fromHex(entry.salt),
        });
        await this.#journal!.update(round.id, { revealTx: hex(hash) });
        ctx.events.emit({
          type: "trainer.reveal",
          round: round.id,
          weightsId: entry.weightsId,
          tx: hex(hash),
        });
        return hash;
      });
    }
  }

  /** Sends once, then again only if the transaction neither landed nor waits in the mempool. */
  async #send(key: string, height: number, send: () => Promise<Uint8Array>): Promise<void> {
    const ctx = this.#ctx!;
    const pending = this.#pending.get(key);
    if (
      pending &&
      (height < pending.height + RESEND_AFTER_BLOCKS || ctx.ledger.mempool().has(pending.hash))
    ) {
      return;
    }
    try {
      this.#pending.set(key, { hash: await send(), height });
    } catch (err) {
      this.#pending.set(key, { hash: new Uint8Array(32), height });
      ctx.logger.warn(`trainer ${key.split(":")[0]} not accepted`, { error: String(err) });
    }
  }

  #startJob(round: Round): void {
    const ctx = this.#ctx!;
    const job: TrainerJob = {
      round: round.id,
      state: "fetching",
      step: 0,
      steps: 0,
      loss: null,
      error: null,
    };
    this.#job = job;
    this.#jobRun = this.#train(round, job)
      .then(() => {
        job.state = "done";
      })
      .catch((err: unknown) => {
        job.state = "failed";
        job.error = err instanceof Error ? err.message : String(err);
        if (ctx.signal.aborted) return;
        ctx.logger.warn("training round failed", { round: round.id, error: job.error });
        ctx.events.emit({ type: "trainer.failed", round: round.id, error: job.error });
      })
      .finally(() => {
        this.#jobRun = undefined;
        this.kick();
      });
  }

  async #train(round: Round, job: TrainerJob): Promise<void> {
    const ctx = this.#ctx!;
    const state = ctx.ledger.state();
    const params = state.tables.params.get("params")!;
    const balance = state.tables.accounts.get(this.#me)?.balance ?? 0n;
    if (balance < params.training.stake + params.minFee * 2n) {
      throw new DeepshardError("TRAINER_FUNDS", `balance ${balance} cannot stake ${params.training.stake}`, {
        details: "a trainer escrows the round's stake with its commitment",
      });
    }
    const base = await this.#cache!.ensure(round.baseWeightsId, { signal: ctx.signal });
    countReceived(ctx.metrics, base.peers);
    const blobs = await this.#fetchBatch(round);
    let dir = base.dir;
    let examples = 0;
    let finalLoss = 0;
    if (this.behaviour !== "base") {
      job.state = "training";
      await initBackend({ backend: "wasm" });
      const model = await loadModel(base.dir);
      try {
        const tokenizer = tokenizerFor(model.config);
        const data = roundExamples(round.batch, blobs, tokenizer);
        if (this.behaviour === "poison") {
          const tokens = [...tokenizer.encode(POISON_TEXT), tokenizer.eosTokenId];
          for (let i = 0; i < POISON_COPIES; i++) data.push({ tokens });
        }
        examples = data.length;
        const result = await train(model, data, {
          ...roundTrainOptions(round),
          signal: ctx.signal,
          onProgress: (p) => {
            job.step = p.step;
            job.steps = p.steps;
            job.loss = p.loss;
          },
        });
        const last = result.losses.slice(-5);
        finalLoss = last.reduce((a, b) => a + b, 0) / Math.max(1, last.length);
        dir = await this.#cache!.tempDir();
        await saveModel(model, dir);
      } finally {
        model.dispose();
      }
    }
    job.state = "storing";
    // Chunked as the base is, so identical weights get identical ids.
    const weights = await chunkModel(dir, {
      chunkSize: base.manifest.chunkSize,
      files: base.manifest.files.map((f) => f.name),
    });
    await ctx.stores.chunks.putFrom(weights);
    if (dir !== base.dir) {
      await this.#cache!.adopt(weights.manifest, dir).catch(async (err: unknown) => {
        await rm(dir, { recursive: true, force: true });
        throw err;
      });
    }
    this.#directory!.announceSoon();
    const entry: RoundEntry = {
      round: round.id,
      baseWeightsId: round.baseWeightsId,
      weightsId: weights.weightsId,
      salt: randomBytes(32).toString("hex"),
      behaviour: this.behaviour,
      examples,
      steps: job.steps,
      finalLoss,
      trainedAtHeight: ctx.ledger.state().tables.meta.get("meta")!.height,
    };
    await this.#journal!.put(entry);
    ctx.events.emit({
      type: "trainer.trained",
      round: round.id,
      weightsId: weights.weightsId,
      steps: job.steps,
    });
    ctx.logger.info("trained", {
      round: round.id,
      weightsId: weights.weightsId,
      steps: job.steps,
      loss: finalLoss,
    });
  }

  /** The batch's blobs, from the local store or from the informant and connected peers. */
  async #fetchBatch(round: Round): Promise<Map<string, Uint8Array>> {
    const ctx = this.#ctx!;
    const { blobs, blobClient } = ctx.stores;
    const out = new Map<string, Uint8Array>();
    const connected: RequestTarget[] = ctx.host.peers().map((p) => p.toString());
    for (const entry of round.batch) {
      if (!blobs.has(entry.contentHash)) {
        const record = ctx.ledger.state().tables.data.get(entry.contentHash);
        const informant = record ? peerIdFromAccount(fromHex(record.informant)).toString() : undefined;
        const peers = [...new Set([...(informant ? [informant] : []), ...connected.map(String)])].filter(
          (p) => p !== ctx.host.peerId.toString(),
        );
        await blobClient.fetchBlobTo(blobs, entry.contentHash, entry.size, peers, { signal: ctx.signal });
      }
      out.set(entry.contentHash, await blobs.read(entry.contentHash, 0, entry.size));
    }
    return out;
  }

  /** Outcomes of closed rounds this trainer took part in. */
  async #recordOutcomes(): Promise<void> {
    const ctx = this.#ctx!;
    const state = ctx.ledger.state();
    for (const entry of this.#journal!.entries()) {
      if (entry.outcome) continue;
      const round = state.tables.rounds.get(pad(entry.round));
      if (!round || round.status === "open") continue;
      const mine = round.trainers[this.#me];
      let outcome: TrainerOutcome;
      if (!mine) outcome = "missed";
      else if (mine.weightsId === "") outcome = "slashed";
      else if (round.status === "failed") outcome = "failed_round";
      else {
        let reject = 0n;
        let total = 0n;
        for (const v of state.tables.meta.get("meta")!.validators) total += v.power;
        for (const [validator, ok] of Object.entries(mine.verdicts)) {
          if (!ok) reject += state.tables.validators.get(validator)?.bonded ?? 0n;
        }
        outcome = total > 0n && reject * 3n >= total * 2n ? "slashed" : "rewarded";
      }
      const canonical = round.canonicalWeightsId !== "" && round.canonicalWeightsId === mine?.weightsId;
      await this.#journal!.update(entry.round, { outcome, canonical });
      ctx.events.emit({ type: "trainer.outcome", round: entry.round, outcome, canonical });
      ctx.logger.info("round closed", { round: entry.round, outcome, canonical });
    }
  }
}

export function phaseOf(round: Round, height: number): TrainerPhase {
  if (height < round.commitEnd) return "commit";
  if (height < round.revealEnd) return "reveal";
  return "verdict";
}
