/**
 * The validator role's weights part: checks every trainer's revealed weights and sends one
 * `training.verdict` per round. After each committed block it looks at the active round:
 *
 *  1. From the round's opening: the base weights (the node's model cache, else fetched by weights id)
 *     and the batch (the local blob store, else the informant and connected peers); then its
 *     reference replicas, trained in a worker thread with the round's recipe (the trainer's
 *     recipe.ts): replica 0 with the round's seed exactly as an honest trainer trains, the others
 *     with seeds of this validator's own, which give the honest band. Replicas are kept on disk
 *     per round, so a restart does not train them again.
 *  2. Once the commit window closed: probes drawn with the hash of the block that closed it (no
 *     trainer knew them while training, see probes.ts), and the base and replicas fingerprinted.
 *  3. As trainers reveal: each submission's weights, by weights id. The base weights and a result
 *     bit-identical to replica 0 are already here; other weights come from the holders that
 *     announce them and from the trainer itself (its account key is its peer id), every chunk
 *     checked against the weights id. Failed fetches are retried (1, 2, 4, 8 blocks).
 *  4. In the verdict window, once every submission is in (or `marginBlocks` before its end): the
 *     judgement (`judgeRound` of @deepshard/validator; a result bit-identical to the round's recipe
 *     is accepted as replayed), weights nobody served rejected as `weights_unavailable`, and one
 *     `training.verdict` transaction with every verdict and its reasons.
 *
 * Never two verdicts for a round: the ledger's record of verdicts plus a durable record written
 * before the transaction is sent (journal.ts); a verdict whose transaction got lost is sent again
 * only after it had time to land and when it is neither in the mempool nor in a block.
 *
 * `GET /validator/weights` shows the round's work and the recent verdicts; `validator.weights_*`
 * and `validator.verdict` events and `deepshard_training_*` metrics report each step.
 */
import { rm } from "node:fs/promises";
import type { LedgerState, Round } from "@deepshard/ledger";
import {
  compareBytes,
  DeepshardError,
  MAX_REASONS,
  MAX_VERDICTS,
  peerIdFromAccount,
  type TrainerVerdict,
  trainerVerdictSchema,
} from "@deepshard/protocol";
import type { RequestTarget } from "@deepshard/protocol/host";
import type { ShardManifest } from "@deepshard/tensor";
import type { VerdictThresholds } from "@deepshard/validator";
import { Counter } from "prom-client";
import { ApiError } from "../../api.ts";
import type { NodeConfig } from "../../config.ts";
import type { Logger } from "../../logger.ts";
import type { RoleContext, RoleService } from "../../service.ts";
import { chunkModel } from "../../weights-id.ts";
import { type DirectoryOptions, WeightsDirectory } from "../storage/directory.ts";
import { ModelCache } from "../storage/models.ts";
import { type TrainerVerdictRecord, type VerdictRecord, WeightsValidatorJournal } from "./journal.ts";
import type { RoundProbes } from "./probes.ts";
import { TensorWorker } from "./tensor-worker.ts";
import type { BatchInput } from "./worker.ts";

export interface WeightsValidatorOptions extends DirectoryOptions {
  /** Reference replicas per round, at least 2 (default 2): the first follows the round's recipe exactly. */
  replicas?: number | undefined;
  thresholds?: Partial<VerdictThresholds> | undefined;
  /**
   * Blocks before the end of the verdict window at which submissions still missing are given up
   * and the verdict is sent (default 2: room for the transaction to land).
   */
  marginBlocks?: number | undefined;
  /** Times a verdict is sent for one round at most (default 3). */
  maxAttempts?: number | undefined;
}

/** Reason code of a submission whose weights nobody served by the deadline. */
export const UNAVAILABLE = "weights_unavailable";
/** Reason code of weights that are not a model of the base's architecture. */
export const INVALID = "weights_invalid";

/** Blocks after which a verdict that neither landed nor waits in the mempool is sent again. */
const RESEND_AFTER_BLOCKS = 3;
/** A fetched submission larger than this many times the base is refused (same architecture, same size). */
const MAX_SIZE_FACTOR = 2;

interface ReplicaState {
  index: number;
  seed: string;
  dir: string;
  state: "pending" | "training" | "ready" | "failed";
  cached: boolean;
  ms: number | null;
  finalLoss: number | null;
}

interface SubmissionState {
  trainer: string;
  weightsId: string;
  state: "pending" | "fetching" | "ready" | "invalid";
  dir: string | undefined;
  /** Where the weights came from. */
  source: "base" | "replica" | "cache" | "local" | "peers" | undefined;
  failures: number;
  retryAt: number;
  error: string | undefined;
  fingerprinted: boolean;
}

interface RoundJob {
  id: number;
  round: Round;
  phase: "waiting" | "preparing" | "ready" | "failed";
  error: string | undefined;
  /** A failed preparation (base or batch not fetched, say) is tried again from this height. */
  prepareFailures: number;
  prepareAt: number;
  base: { dir: string; manifest: ShardManifest } | undefined;
  batch: BatchInput | undefined;
  /** Training examples the batch makes (known after the first replica). */
  examples: number | undefined;
  replicas: ReplicaState[];
  /** Weights id of replica 0: what an honest trainer on the deterministic backend submits. */
  exactId: string | undefined;
  probes: RoundProbes | undefined;
  drawing: boolean;
  baseFingerprinted: boolean;
  subs: Map<string, SubmissionState>;
  judging: boolean;
}

const pad = (n: number): string => n.toString().padStart(12, "0");
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
const errorText = (err: unknown): string =>
  err instanceof DeepshardError
    ? `${err.code}: ${err.shortMessage}`
    : err instanceof Error
      ? err.message
      : `${err}`;

export class WeightsValidatorService implements RoleService {
  readonly name = "validator";
  readonly #options: WeightsValidatorOptions;
  readonly #replicas: number;
  #ctx: RoleContext | undefined;
  #log: Logger | undefined;
  #me = "";
  #journal: WeightsValidatorJournal | undefined;
  #directory: WeightsDirectory | undefined;
  #cache: ModelCache | undefined;
  readonly #worker = new TensorWorker();
  #job: RoundJob | undefined;
  readonly #running = new Set<Promise<unknown>>();
  #off: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #again = false;
  #metrics:
    | {
        verdicts: Counter<"verdict">;
        txs: Counter<"outcome">;
        fetches: Counter<"outcome">;
        fetchedBytes: Counter;
        replicaSeconds: Counter;
        judgeSeconds: Counter;
      }
    | undefined;

  constructor(_config?: NodeConfig, options: WeightsValidatorOptions = {}) {
    this.#options = options;
    this.#replicas = Math.max(2, Math.floor(options.replicas ?? 2));
  }

  async start(ctx: RoleContext): Promise<void> {
    this.#ctx = ctx;
    this.#log = ctx.logger.child("validator.weights");
    this.#me = hex(ctx.account.publicKey);
    this.#journal = await WeightsValidatorJournal.open(ctx.paths.root);
    const state = ctx.ledger.state();
    const active = state.tables.meta.get("meta")!.activeRound;
    await this.#journal.keepOnly(active >= 0 ? active : undefined, { temp: true });
    this.#directory = WeightsDirectory.acquire(ctx, this.#options);
    this.#cache = new ModelCache(ctx.paths.root, ctx.stores.chunks, ctx.stores.blobClient, this.#directory);
    // The roles that share the model cache clean it at their start; alone, this one does.
    if (!ctx.config.roles.some((r) => r === "trainer" || r === "storage" || r === "inference")) {
      await this.#cache.clean();
    }
    const registers = [ctx.metrics.registry];
    this.#metrics = {
      verdicts: new Counter({
        name: "deepshard_training_verdicts_total",
        help: "Verdicts on trainers' submissions sent in training.verdict transactions, by verdict (accept, reject)",
        labelNames: ["verdict"],
        registers,
      }),
      txs: new Counter({
        name: "deepshard_training_verdict_txs_total",
        help: "training.verdict transactions, by outcome (sent, resent, refused)",
        labelNames: ["outcome"],
        registers,
      }),
      fetches: new Counter({
        name: "deepshard_training_weights_fetches_total",
        help: "Trainers' weights fetched from peers to judge, by outcome (ok, failed)",
        labelNames: ["outcome"],
        registers,
      }),
      fetchedBytes: new Counter({
        name: "deepshard_training_weights_fetched_bytes_total",
        help: "Bytes of trainers' weights fetched from peers",
        registers,
      }),
      replicaSeconds: new Counter({
        name: "deepshard_training_replica_seconds_total",
        help: "Time spent training reference replicas (in the validator's worker thread)",
        registers,
      }),
      judgeSeconds: new Counter({
        name: "deepshard_training_judge_seconds_total",
        help: "Time from the start of a round's judgement to its verdict transaction",
        registers,
      }),
    };
    ctx.api.route("GET", "/validator/weights", () => this.report());
    this.#off = ctx.ledger.onCommit(() => this.kick());
    this.kick();
  }

  async stop(): Promise<void> {
    this.#off?.();
    // Ends a replica's training at once: its half-written folder is removed at the next start.
    await this.#worker.close();
    await this.#loop?.catch(() => {});
    await Promise.allSettled([...this.#running]);
    this.#directory?.release();
  }

  /** What `GET /validator/weights` answers. */
  report() {
    const ctx = this.#ctx;
    if (!ctx) throw new ApiError(503, "NOT_RUNNING", "the weights validator is not running");
    const state = ctx.ledger.state();
    const job = this.#job;
    return {
      active: this.#active(state),
      replicas: this.#replicas,
      round: job
        ? {
            id: job.id,
            phase: job.phase,
            error: job.error ?? null,
            baseWeightsId: job.round.baseWeightsId,
            commitEnd: job.round.commitEnd,
            revealEnd: job.round.revealEnd,
            verdictEnd: job.round.verdictEnd,
            examples: job.examples ?? null,
            exactWeightsId: job.exactId ?? null,
            probes: job.probes ? { key: job.probes.key, heldOut: job.probes.heldOut } : null,
            replicas: job.replicas.map((r) => ({
              index: r.index,
              state: r.state,
              cached: r.cached,
              ms: r.ms,
              finalLoss: r.finalLoss,
            })),
            submissions: [...job.subs.values()].map((s) => ({
              trainer: s.trainer,
              weightsId: s.weightsId,
              state: s.state,
              source: s.source ?? null,
              failures: s.failures,
              error: s.error ?? null,
            })),
          }
        : null,
      verdicts: this.#journal!.verdicts().slice(0, 20),
    };
  }

  /** Looks at the ledger soon; calls during a look make one more. */
  kick(): void {
    if (this.#loop) {
      this.#again = true;
      return;
    }
    const signal = this.#ctx!.signal;
    this.#loop = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          if (signal.aborted) return;
          this.#log!.error("weights validation pass failed", {
            error: err instanceof Error ? (err.stack ?? err.message) : `${err}`,
          });
        }
      } while (this.#again && !signal.aborted);
    })().finally(() => {
      this.#loop = undefined;
    });
  }

  /** Runs `work` in the background; the pass that follows it sees what it did. */
  #background(what: string, work: () => Promise<void>): void {
    const p = work()
      .catch((err: unknown) => {
        if (!this.#ctx!.signal.aborted) this.#log!.warn(`${what} failed`, { error: errorText(err) });
      })
      .finally(() => {
        this.#running.delete(p);
        if (!this.#ctx!.signal.aborted) this.kick();
      });
    this.#running.add(p);
  }

  #active(state: LedgerState): boolean {
    return state.tables.meta.get("meta")!.validators.some((v) => v.address === this.#me);
  }

  async #pass(): Promise<void> {
    const ctx = this.#ctx!;
    if (ctx.signal.aborted) return;
    const state = ctx.ledger.state();
    const meta = state.tables.meta.get("meta")!;
    const height = meta.height;
    const round = meta.activeRound >= 0 ? state.tables.rounds.get(pad(meta.activeRound)) : undefined;
    if (round?.status !== "open") {
      if (this.#job) {
        this.#job = undefined;
        await this.#journal!.keepOnly(undefined, { temp: false });
        await this.#worker.release();
      }
      return;
    }
    if (this.#job?.id !== round.id) {
      if (this.#job) await this.#journal!.keepOnly(round.id, { temp: false });
      this.#job = newJob(round, this.#replicas, this.#me, this.#journal!);
    }
    const job = this.#job;
    if (!this.#active(state)) return;
    if (this.#votedOnLedger(round)) return;
    if (height > round.verdictEnd) return;
    const record = this.#journal!.verdict(round.id);
    if (record) {
      await this.#maybeResend(round, record, height);
      return;
    }

    const deadline = Math.max(round.revealEnd, round.verdictEnd - (this.#options.marginBlocks ?? 2));
    if (job.phase === "failed" && height >= job.prepareAt && height < deadline) job.phase = "waiting";
    if (job.phase === "waiting") {
      job.phase = "preparing";
      this.#background(`preparing round ${round.id}`, () => this.#prepare(job));
    }
    if (job.phase === "ready" && height >= round.commitEnd && !job.probes && !job.drawing) {
      job.drawing = true;
      this.#background(`drawing the probes of round ${round.id}`, () =>
        this.#drawProbes(job).finally(() => {
          job.drawing = false;
        }),
      );
    }
    if (job.probes && !job.baseFingerprinted) {
      job.baseFingerprinted = true;
      const dirs = [job.base!.dir, ...job.replicas.map((r) => r.dir)];
      this.#background("fingerprinting the references", () =>
        this.#worker.fingerprint({ probesKey: job.probes!.key, probes: job.probes!.probes, dirs }),
      );
    }

    for (const [trainer, t] of Object.entries(round.trainers)) {
      if (t.weightsId === "" || job.subs.has(trainer)) continue;
      job.subs.set(trainer, {
        trainer,
        weightsId: t.weightsId,
        state: "pending",
        dir: undefined,
        source: undefined,
        failures: 0,
        retryAt: 0,
        error: undefined,
        fingerprinted: false,
      });
    }
    for (const sub of job.subs.values()) {
      if (sub.state === "pending") this.#resolveLocally(job, sub);
      if (sub.state === "pending" && height >= sub.retryAt && this.#mayFetch(job, height)) {
        sub.state = "fetching";
        this.#background(`fetching the weights of ${sub.trainer}`, () => this.#fetch(job, sub));
      }
      if (sub.state === "ready" && job.probes && !sub.fingerprinted && sub.source !== "base") {
        sub.fingerprinted = true;
        const dirs = [sub.dir!];
        this.#background("fingerprinting a submission", () =>
          this.#worker.fingerprint({ probesKey: job.probes!.key, probes: job.probes!.probes, dirs }),
        );
      }
    }

    if (height < round.revealEnd || job.judging) return;
    const complete =
      job.phase === "ready" &&
      job.probes !== undefined &&
      [...job.subs.values()].every((s) => s.state === "ready" || s.state === "invalid");
    if (complete || height >= deadline) {
      job.judging = true;
      this.#background(`judging round ${round.id}`, () =>
        this.#judgeAndSend(job).finally(() => {
          job.judging = false;
        }),
      );
    }
  }

  /** Whether this validator's verdict on the round is on the ledger. */
  #votedOnLedger(round: Round): boolean {
    return Object.values(round.trainers).some((t) => t.verdicts[this.#me] !== undefined);
  }

  /** Fetch only once replica 0 tells which weights need none, unless that is late. */
  #mayFetch(job: RoundJob, height: number): boolean {
    return job.exactId !== undefined || job.phase === "failed" || height >= job.round.revealEnd;
  }

  /** The base weights and a result bit-identical to replica 0 are here already. */
  #resolveLocally(job: RoundJob, sub: SubmissionState): void {
    if (sub.weightsId === job.round.baseWeightsId && job.base) {
      Object.assign(sub, { state: "ready", dir: job.base.dir, source: "base" });
    } else if (sub.weightsId === job.exactId) {
      Object.assign(sub, { state: "ready", dir: job.replicas[0]!.dir, source: "replica" });
    }
  }

  async #prepare(job: RoundJob): Promise<void> {
    const ctx = this.#ctx!;
    try {
      const base = await this.#cache!.ensure(job.round.baseWeightsId, { signal: ctx.signal });
      job.base = { dir: base.dir, manifest: base.manifest };
      job.batch ??= {
        key: job.round.batchRoot,
        entries: job.round.batch,
        blobs: await this.#fetchBatch(job.round),
      };
      for (const replica of job.replicas) {
        if (await this.#journal!.has(replica.dir)) {
          replica.cached = true;
        } else {
          replica.state = "training";
          const started = performance.now();
          const tmp = await this.#journal!.tempDir(job.id);
          try {
            const result = await this.#worker.train({
              baseDir: base.dir,
              batch: job.batch,
              recipe: { hyperParameters: job.round.hyperParameters, seed: job.round.seed },
              seed: replica.seed,
              outDir: tmp,
            });
            await this.#journal!.adopt(tmp, replica.dir);
            replica.finalLoss = result.finalLoss;
            job.examples = result.examples;
          } catch (err) {
            await rm(tmp, { recursive: true, force: true });
            replica.state = "failed";
            throw err;
          }
          replica.ms = Math.round(performance.now() - started);
          this.#metrics!.replicaSeconds.inc(replica.ms / 1000);
        }
        replica.state = "ready";
        if (replica.index === 0) {
          // Chunked as trainers chunk their result, so identical weights have the identical id.
          const chunked = await chunkModel(replica.dir, {
            chunkSize: base.manifest.chunkSize,
            files: base.manifest.files.map((f) => f.name),
          });
          job.exactId = chunked.weightsId;
          this.kick();
        }
      }
      job.phase = "ready";
      const event = {
        round: job.id,
        examples: job.examples ?? null,
        exactWeightsId: job.exactId!,
        replicas: job.replicas.map((r) => ({ cached: r.cached, ms: r.ms })),
      };
      ctx.events.emit({ type: "validator.weights_prepared", ...event });
      this.#log!.info("reference replicas ready", event);
    } catch (err) {
      if (ctx.signal.aborted) return;
      job.phase = "failed";
      job.error = errorText(err);
      job.prepareFailures++;
      job.prepareAt =
        ctx.ledger.state().tables.meta.get("meta")!.height + 2 ** Math.min(job.prepareFailures - 1, 3);
      ctx.events.emit({ type: "validator.weights_prepare_failed", round: job.id, error: job.error });
      throw err;
    }
  }

  /** The batch's blobs, from the local store or from the informant and connected peers. */
  async #fetchBatch(round: Round): Promise<Map<string, Uint8Array>> {
    const ctx = this.#ctx!;
    const { blobs, blobClient } = ctx.stores;
    const out = new Map<string, Uint8Array>();
    const self = ctx.host.peerId.toString();
    for (const entry of round.batch) {
      if (!blobs.has(entry.contentHash)) {
        const record = ctx.ledger.state().tables.data.get(entry.contentHash);
        const informant = record ? safePeer(record.informant) : undefined;
        const peers = [
          ...new Set([...(informant ? [informant] : []), ...ctx.host.peers().map(String)]),
        ].filter((p) => p !== self);
        await blobClient.fetchBlobTo(blobs, entry.contentHash, entry.size, peers, { signal: ctx.signal });
      }
      out.set(entry.contentHash, await blobs.read(entry.contentHash, 0, entry.size));
    }
    return out;
  }

  async #drawProbes(job: RoundJob): Promise<void> {
    const ctx = this.#ctx!;
    const block = await ctx.ledger.block(job.round.commitEnd);
    if (!block) throw new DeepshardError("NO_BEACON", `block ${job.round.commitEnd} is not stored`);
    const blobs = ctx.stores.blobs;
    const state = ctx.ledger.state();
    const inBatch = new Set(job.round.batch.map((e) => e.contentHash));
    // Accepted data outside the batch that this node holds: queued first, then older.
    const candidates = [
      ...[...state.tables.queue.values()].map((q) => q.contentHash),
      ...[...state.tables.data].filter(([, d]) => d.status === "accepted").map(([hash]) => hash),
    ];
    const heldOutBlobs: Uint8Array[] = [];
    for (const hash of new Set(candidates)) {
      if (inBatch.has(hash) || !blobs.has(hash)) continue;
      heldOutBlobs.push(await blobs.read(hash, 0, Math.min(blobs.size(hash) ?? 0, 256 * 1024)));
      if (heldOutBlobs.length >= 8) break;
    }
    job.probes = await this.#worker.probes({
      baseDir: job.base!.dir,
      batch: job.batch!,
      heldOutBlobs,
      beacon: hex(block.hash),
    });
  }

  async #fetch(job: RoundJob, sub: SubmissionState): Promise<void> {
    const ctx = this.#ctx!;
    const started = performance.now();
    try {
      const dir = this.#journal!.submissionDir(job.id, sub.weightsId);
      const cache = this.#cache!;
      const local = ctx.stores.chunks.manifest(sub.weightsId);
      if (await this.#journal!.has(dir)) {
        Object.assign(sub, { dir, source: "cache" });
      } else if (await cache.has(sub.weightsId)) {
        Object.assign(sub, { dir: cache.dirOf(sub.weightsId), source: "cache" });
      } else if (local && ctx.stores.chunks.indices(sub.weightsId).length === local.chunkCount) {
        const ensured = await cache.ensure(sub.weightsId, { signal: ctx.signal });
        Object.assign(sub, { dir: ensured.dir, source: "local" });
      } else {
        const bytes = await this.#fetchFromPeers(job, sub, dir);
        Object.assign(sub, { dir, source: "peers" });
        this.#metrics!.fetchedBytes.inc(bytes);
      }
      sub.state = "ready";
      sub.error = undefined;
      this.#metrics!.fetches.inc({ outcome: "ok" });
      ctx.events.emit({
        type: "validator.weights_fetched",
        round: job.id,
        trainer: sub.trainer,
        weightsId: sub.weightsId,
        source: sub.source,
        ms: Math.round(performance.now() - started),
      });
    } catch (err) {
      if (ctx.signal.aborted) return;
      sub.error = errorText(err);
      if (err instanceof DeepshardError && err.code === "WEIGHTS_INVALID") {
        sub.state = "invalid";
      } else {
        sub.state = "pending";
        sub.failures++;
        const height = ctx.ledger.state().tables.meta.get("meta")!.height;
        sub.retryAt = height + 2 ** Math.min(sub.failures - 1, 3);
      }
      this.#metrics!.fetches.inc({ outcome: "failed" });
      ctx.events.emit({
        type: "validator.weights_fetch_failed",
        round: job.id,
        trainer: sub.trainer,
        weightsId: sub.weightsId,
        error: sub.error,
      });
      this.#log!.info("could not fetch a submission", { trainer: sub.trainer, error: sub.error });
    }
  }

  /** Fetches from the holders that announce the weights and from the trainer; returns the bytes. */
  async #fetchFromPeers(job: RoundJob, sub: SubmissionState, dir: string): Promise<number> {
    const ctx = this.#ctx!;
    const directory = this.#directory!;
    const self = ctx.host.peerId.toString();
    const trainerPeer = safePeer(sub.trainer);
    const trainer: RequestTarget[] =
      trainerPeer && trainerPeer !== self ? [directory.target(trainerPeer)] : [];
    const announcers = directory
      .announcers(sub.weightsId)
      .filter((p) => p.peerId !== self)
      .map((p) => directory.target(p.peerId));
    const manifest = await ctx.stores.blobClient.fetchManifest(sub.weightsId, [...trainer, ...announcers], {
      signal: ctx.signal,
    });
    const base = job.base?.manifest;
    if (
      base &&
      (manifest.totalSize > MAX_SIZE_FACTOR * base.totalSize || manifest.chunkSize !== base.chunkSize)
    ) {
      throw new DeepshardError("WEIGHTS_INVALID", "the submission is not shaped like the base weights", {
        meta: { totalSize: manifest.totalSize, chunkSize: manifest.chunkSize },
      });
    }
    // Holders that announce a chunk first (spreading the load), the trainer last for every chunk.
    const announced = directory.holders(sub.weightsId, manifest.chunkCount);
    const holders = new Map<number, RequestTarget[]>();
    for (let i = 0; i < manifest.chunkCount; i++) {
      const list = (announced.get(i) ?? []).filter((t) => String(t) !== trainerPeer);
      holders.set(i, [...list, ...trainer]);
    }
    const tmp = await this.#journal!.tempDir(job.id);
    try {
      await ctx.stores.blobClient.fetchWeights(manifest, holders, { dir: tmp, signal: ctx.signal });
      await this.#journal!.adopt(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return manifest.totalSize;
  }

  /** Judges what is in, rejects what is missing, and sends the round's one verdict. */
  async #judgeAndSend(job: RoundJob): Promise<void> {
    const ctx = this.#ctx!;
    const started = performance.now();
    const subs = [...job.subs.values()];
    const ready = subs.filter((s) => s.state === "ready");
    let mode: VerdictRecord["mode"] = "certain";
    const verdicts: TrainerVerdictRecord[] = [];
    const entry = (
      s: SubmissionState,
      accept: boolean,
      reasons: string[],
      judged: { score: number; deviation: number } | null,
    ): TrainerVerdictRecord => ({
      trainer: s.trainer,
      weightsId: s.weightsId,
      accept,
      reasons: reasons.slice(0, MAX_REASONS),
      score: judged?.score ?? null,
      deviation: judged?.deviation ?? null,
      replayed: s.weightsId === job.exactId,
    });
    let judged = new Set<SubmissionState>();
    if (job.phase === "ready" && job.probes) {
      const dirOf = new Map(ready.map((s) => [s.weightsId, s.dir!]));
      const reply = await this.#worker.judge({
        probesKey: job.probes.key,
        probes: job.probes.probes,
        baseDir: job.base!.dir,
        referenceDirs: job.replicas.map((r) => r.dir),
        submissions: [...dirOf].map(([id, dir]) => ({ id, dir, replayed: id === job.exactId })),
        ...(this.#options.thresholds ? { thresholds: this.#options.thresholds } : {}),
      });
      if (reply.judgement) {
        mode = "judged";
        const byId = new Map(reply.judgement.verdicts.map((v) => [v.id, v]));
        for (const s of ready) {
          const v = byId.get(s.weightsId);
          if (!v) {
            verdicts.push(entry(s, false, [INVALID], null));
          } else if (s.weightsId === job.exactId) {
            // The round's recipe reproduced bit for bit: honest whatever the band says.
            verdicts.push(entry(s, true, [], v));
          } else {
            verdicts.push(
              entry(
                s,
                v.accept,
                v.reasons.map((r) => r.code),
                v,
              ),
            );
          }
        }
        for (const invalid of reply.invalid) {
          for (const s of ready) if (s.weightsId === invalid.id) s.error = invalid.error;
        }
      } else {
        // The replicas agree bit for bit: the recipe has one honest result and no band around it.
        mode = "replay";
        for (const s of ready) {
          const accept = s.weightsId === job.exactId;
          const reason = s.weightsId === job.round.baseWeightsId ? "weights_unchanged" : "replay_mismatch";
          verdicts.push(entry(s, accept, accept ? [] : [reason], null));
        }
      }
      judged = new Set(ready);
    }
    for (const s of subs) {
      if (judged.has(s)) continue;
      if (s.state === "invalid") verdicts.push(entry(s, false, [INVALID], null));
      else if (s.state !== "ready") verdicts.push(entry(s, false, [UNAVAILABLE], null));
      else if (s.weightsId === job.round.baseWeightsId)
        verdicts.push(entry(s, false, ["weights_unchanged"], null));
      else if (s.weightsId === job.exactId) verdicts.push(entry(s, true, [], null));
      // Else no verdict: without references this validator cannot tell, and abstains.
    }
    verdicts.sort((a, b) => compareBytes(fromHex(a.trainer), fromHex(b.trainer)));
    const ms = Math.round(performance.now() - started);
    this.#metrics!.judgeSeconds.inc(ms / 1000);
    if (ctx.signal.aborted) return;
    const height = ctx.ledger.state().tables.meta.get("meta")!.height;
    const record: VerdictRecord = {
      round: job.id,
      state: "sending",
      height,
      attempts: 0,
      mode,
      verdicts,
      ms,
    };
    this.#log!.info("round judged", {
      round: job.id,
      mode,
      verdicts: verdicts.map((v) => `${v.trainer.slice(0, 8)}:${v.accept ? "accept" : v.reasons.join("+")}`),
    });
    if (verdicts.length === 0) {
      await this.#journal!.putVerdict({ ...record, state: "sent" });
      return;
    }
    await this.#send(record, "sent");
    await this.#worker.release();
  }

  /** Writes the record, then sends; the record says `sent` with the hash once the mempool took it. */
  async #send(record: VerdictRecord, outcome: "sent" | "resent"): Promise<void> {
    const ctx = this.#ctx!;
    const height = ctx.ledger.state().tables.meta.get("meta")!.height;
    const sending: VerdictRecord = { ...record, state: "sending", height, attempts: record.attempts + 1 };
    await this.#journal!.putVerdict(sending);
    const verdicts: TrainerVerdict[] = record.verdicts
      .slice(0, MAX_VERDICTS)
      .map((v) =>
        trainerVerdictSchema.parse(
          { trainer: fromHex(v.trainer), accept: v.accept, reasons: v.reasons },
          "verdict",
        ),
      );
    let tx: string;
    try {
      tx = hex(await ctx.send({ type: "training.verdict", round: record.round, verdicts }));
    } catch (err) {
      const error = errorText(err);
      this.#metrics!.txs.inc({ outcome: "refused" });
      ctx.events.emit({ type: "validator.verdict_refused", round: record.round, error });
      this.#log!.warn("the verdict was refused", { round: record.round, error });
      return;
    }
    await this.#journal!.putVerdict({ ...sending, state: "sent", tx });
    this.#metrics!.txs.inc({ outcome });
    for (const v of record.verdicts) this.#metrics!.verdicts.inc({ verdict: v.accept ? "accept" : "reject" });
    ctx.events.emit({
      type: "validator.verdict",
      round: record.round,
      tx,
      mode: record.mode,
      attempt: sending.attempts,
      verdicts: record.verdicts,
    });
    this.#log!.info("verdict sent", { round: record.round, tx, attempt: sending.attempts });
  }

  /**
   * A verdict recorded but not on the ledger: sent again (the same verdicts) only once it had time
   * to land and is neither waiting in the mempool nor in a block.
   */
  async #maybeResend(round: Round, record: VerdictRecord, height: number): Promise<void> {
    const ctx = this.#ctx!;
    if (record.verdicts.length === 0 || record.attempts >= (this.#options.maxAttempts ?? 3)) return;
    if (height < record.height + RESEND_AFTER_BLOCKS || height >= round.verdictEnd) return;
    if (record.tx !== undefined) {
      const hash = fromHex(record.tx);
      if (ctx.ledger.mempool().has(hash)) return;
      if (await ctx.ledger.findTx(hash)) return;
    }
    this.#log!.warn("the verdict did not land; sending it again", { round: round.id, tx: record.tx });
    await this.#send(record, "resent");
  }
}

function newJob(round: Round, replicas: number, me: string, journal: WeightsValidatorJournal): RoundJob {
  return {
    id: round.id,
    round,
    phase: "waiting",
    error: undefined,
    prepareFailures: 0,
    prepareAt: 0,
    base: undefined,
    batch: undefined,
    examples: undefined,
    replicas: Array.from({ length: replicas }, (_, index) => ({
      index,
      // Replica 0 is the round's recipe exactly; the others seeds of this validator's own.
      seed: index === 0 ? round.seed : `${round.seed}/${me}/replica-${index}`,
      dir: journal.replicaDir(round.id, index),
      state: "pending",
      cached: false,
      ms: null,
      finalLoss: null,
    })),
    exactId: undefined,
    probes: undefined,
    drawing: false,
    baseFingerprinted: false,
    subs: new Map(),
    judging: false,
  };
}

/** The peer id of an account (hex public key); undefined for a key that is not one. */
function safePeer(account: string): string | undefined {
  try {
    return peerIdFromAccount(fromHex(account)).toString();
  } catch {
    return undefined;
  }
}
