/**
 * The validator role's data part: after each committed block, for every open submission this
 * node has not voted on while its window is still open, it fetches the blob, scores it on the
 * seed's five criteria (`scoreSubmission` of @deepshard/validator) and sends `data.vote`.
 *
 * - Holders asked for a blob: the informant's peer (its account key is its peer id), then the
 *   validators that already voted on it (they keep what they fetched), then other connected peers.
 *   Every blob is checked against its content hash and announced size while it streams in; a blob
 *   larger than announced is refused.
 * - Novelty is measured against the accepted corpus: a MinHash index of every accepted
 *   submission's segments, filled as submissions are accepted and rebuilt at start from the
 *   ledger's accepted data and the blobs this node holds (missing ones are fetched when the ledger
 *   still names their size: the training queue and rounds).
 * - Corroboration (reproducibility) comes from the OPEN submissions of other informants: their
 *   stake is in escrow on what they claim. Accepted data is left out on purpose: a copy of the
 *   corpus would otherwise be "corroborated" by the very text it copies, and with the default
 *   weights that alone lifts a verbatim duplicate over the acceptance threshold; repeating
 *   accepted text is what novelty measures.
 * - The canonical model's surprise is optional (`surprise` option): the weights may not be here.
 *   The judge is optional too (`judge` option, DEEPSHARD_JUDGE_URL): scoring completes without it.
 * - A blob the informant serves with the wrong size or hash gets an all-zero vote at once; a blob
 *   nobody serves gets one in the last block of its window (informants must serve what they stake on).
 * - Never two votes for one submission: the ledger's record of votes (which survives restarts),
 *   plus this node's vote transactions still in the mempool.
 *
 * `GET /validator/data` shows what it holds and did; `validator.*` events and `deepshard_data_*`
 * metrics report each fetch and vote.
 */
import type { LedgerState, Submission } from "@deepshard/ledger";
import { CRITERIA, type Criterion, DeepshardError, peerIdFromAccount } from "@deepshard/protocol";
import type { RequestTarget } from "@deepshard/protocol/host";
import {
  CorroborationIndex,
  DEFAULT_SCORERS,
  type ExternalJudge,
  MinHashIndex,
  type ScoringContext,
  scoreSubmission,
  signatureOf,
  splitSegments,
} from "@deepshard/validator";
import { Counter, Gauge } from "prom-client";
import { BlobError } from "../../blobs/index.ts";
import type { RoleContext, RoleService } from "../../service.ts";

/** The canonical model's surprise, for novelty: see ScoringContext of @deepshard/validator. */
export interface SurpriseModel {
  surprise: (text: string) => number | Promise<number>;
  referenceSurprise: number;
}

/** Gives the surprise of the canonical weights `weightsId`, or undefined when they are not at hand. */
export type SurpriseSource = (weightsId: string, signal: AbortSignal) => Promise<SurpriseModel | undefined>;

export interface DataValidatorOptions {
  judge?: ExternalJudge | undefined;
  surprise?: SurpriseSource | undefined;
  /** Votes sent per submission at most (a vote can fail or be dropped); default 3. */
  maxVoteAttempts?: number | undefined;
  /** Peers asked for a blob at most; default 8. */
  maxHolders?: number | undefined;
}

/** One vote as `GET /validator/data` and the `validator.vote` event show it. */
export interface VoteRecord {
  submission: string;
  contentHash: string;
  informant: string;
  height: number;
  tx: string;
  scores: Record<Criterion, number>;
  /** Mean of the scores weighted by the chain's criteria weights, basis points. */
  combined: number;
  segments: number;
  segmentWeights: number;
  /** `scored`, or why the vote is all zero: `unavailable`, `invalid` (wrong size or hash). */
  verdict: "scored" | "unavailable" | "invalid";
  judge: boolean;
  ms: number;
  reason?: string | undefined;
}

interface Tracked {
  contentHash: string;
  size: number;
  informant: string;
  /** The blob's segment texts, once fetched. */
  texts?: string[] | undefined;
  /** Why the informant's blob is unacceptable (wrong size or hash), once found. */
  invalid?: string | undefined;
  fetchFailures: number;
  /** The height from which a failed fetch is tried again (1, 2, 4, then every 8 blocks). */
  retryAt: number;
  lastError?: string | undefined;
  /** This node's vote transaction while it waits in the mempool. */
  pendingVote?: string | undefined;
  voteAttempts: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const ZERO = Object.fromEntries(CRITERIA.map((c) => [c, 0])) as Record<Criterion, number>;
/** Fetch failures of the informant's own copy that prove it announced the wrong blob. */
const INVALID = new Set(["TOO_LARGE", "SIZE_MISMATCH", "HASH_MISMATCH"]);
const RECENT_VOTES = 100;

export class DataValidatorService implements RoleService {
  readonly name = "validator";
  readonly #options: DataValidatorOptions;
  #ctx: RoleContext | undefined;
  #me = "";
  readonly #corpus = new MinHashIndex<string>();
  /** Content hashes in the corpus index. */
  readonly #inCorpus = new Set<string>();
  readonly #tracked = new Map<string, Tracked>();
  readonly #votes: VoteRecord[] = [];
  #surprise: { weightsId: string; model: SurpriseModel | undefined } | undefined;
  /** Rebuilt only when the set of fetched open submissions changes. */
  #corroboration: { key: string; index: CorroborationIndex } | undefined;
  #off: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #again = false;
  #rebuilt: Promise<void> = Promise.resolve();
  #metrics:
    | {
        votes: Counter<"verdict">;
        fetches: Counter<"outcome">;
        fetchedBytes: Counter;
        scoringSeconds: Counter;
      }
    | undefined;

  constructor(options: DataValidatorOptions = {}) {
    this.#options = options;
  }

  async start(ctx: RoleContext): Promise<void> {
    this.#ctx = ctx;
    this.#me = hex(ctx.account.publicKey);
    const registers = [ctx.metrics.registry];
    this.#metrics = {
      votes: new Counter({
        name: "deepshard_data_votes_total",
        help: "data.vote transactions sent, by verdict (scored, unavailable, invalid), and votes the mempool refused (refused)",
        labelNames: ["verdict"],
        registers,
      }),
      fetches: new Counter({
        name: "deepshard_data_fetches_total",
        help: "Submitted blobs fetched from peers to score, by outcome",
        labelNames: ["outcome"],
        registers,
      }),
      fetchedBytes: new Counter({
        name: "deepshard_data_fetched_bytes_total",
        help: "Bytes of submitted blobs fetched from peers",
        registers,
      }),
      scoringSeconds: new Counter({
        name: "deepshard_data_scoring_seconds_total",
        help: "Time spent scoring submissions",
        registers,
      }),
    };
    const corpus = this.#corpus;
    new Gauge({
      name: "deepshard_data_corpus_segments",
      help: "Segments of accepted data in this validator's novelty index",
      registers,
      collect() {
        this.set(corpus.size);
      },
    });
    ctx.api.route("GET", "/validator/data", () => this.report());
    this.#rebuilt = this.#rebuildCorpus().catch((err: unknown) =>
      ctx.logger.warn("rebuilding the accepted corpus failed", { error: `${err}` }),
    );
    this.#off = ctx.ledger.onCommit(() => this.#schedule());
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#off?.();
    await this.#loop;
  }

  /** What `GET /validator/data` answers. */
  report() {
    const state = this.#ctx!.ledger.state();
    return {
      active: this.#active(state),
      corpus: { submissions: this.#inCorpus.size, segments: this.#corpus.size },
      open: [...this.#tracked].map(([id, t]) => {
        const sub = state.tables.submissions.get(id);
        return {
          submission: id,
          contentHash: t.contentHash,
          size: t.size,
          informant: t.informant,
          closesAt: sub?.closesAt,
          fetched: t.texts !== undefined,
          invalid: t.invalid,
          fetchFailures: t.fetchFailures,
          lastError: t.lastError,
          voted: sub?.votes[this.#me] !== undefined,
          pendingVote: t.pendingVote,
        };
      }),
      votes: [...this.#votes],
    };
  }

  #schedule(): void {
    if (this.#loop) {
      this.#again = true;
      return;
    }
    const signal = this.#ctx!.signal;
    this.#loop = (async () => {
      await this.#rebuilt;
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          if (signal.aborted) return;
          this.#ctx!.logger.error("data validation pass failed", {
            error: err instanceof Error ? (err.stack ?? err.message) : `${err}`,
          });
        }
      } while (this.#again && !signal.aborted);
    })().finally(() => {
      this.#loop = undefined;
    });
  }

  #active(state: LedgerState): boolean {
    return state.tables.meta.get("meta")!.validators.some((v) => v.address === this.#me);
  }

  /** One look at the committed state: close what closed, fetch what is open, vote where due. */
  async #pass(): Promise<void> {
    const ctx = this.#ctx!;
    const state = ctx.ledger.state();
    const height = state.tables.meta.get("meta")!.height;
    for (const [id, t] of this.#tracked) {
      if (!state.tables.submissions.has(id)) {
        this.#tracked.delete(id);
        await this.#closed(t, state);
      }
    }
    for (const [id, sub] of state.tables.submissions) {
      if (!this.#tracked.has(id)) {
        this.#tracked.set(id, {
          contentHash: sub.contentHash,
          size: sub.size,
          informant: sub.informant,
          fetchFailures: 0,
          retryAt: 0,
          voteAttempts: 0,
        });
      }
    }
    if (!this.#active(state)) return;
    const due = [...this.#tracked].filter(([id, t]) =>
      this.#due(id, t, state.tables.submissions.get(id)!, height),
    );
    if (due.length === 0) return;

    // Every open blob first, so each vote sees the other informants' open submissions.
    for (const [id, t] of this.#tracked) {
      if (ctx.signal.aborted) return;
      const sub = state.tables.submissions.get(id)!;
      const lastChance = sub.closesAt - height <= 1;
      if (t.texts === undefined && t.invalid === undefined && (height >= t.retryAt || lastChance))
        await this.#load(id, t, sub, height);
    }
    const corroboration = await this.#corroborationIndex();
    const surprise = await this.#surpriseModel(state);
    for (const [id, t] of due) {
      if (ctx.signal.aborted) return;
      const sub = state.tables.submissions.get(id)!;
      if (t.invalid !== undefined) await this.#vote(id, t, height, undefined, "invalid", t.invalid);
      else if (t.texts !== undefined) await this.#vote(id, t, height, { corroboration, surprise }, "scored");
      else if (sub.closesAt - height <= 1)
        await this.#vote(id, t, height, undefined, "unavailable", t.lastError);
      // Yield between submissions: scoring is CPU work and consensus shares the thread.
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Whether to vote now: not yet voted, no vote waiting in the mempool, the window still open. */
  #due(id: string, t: Tracked, sub: Submission, height: number): boolean {
    if (sub.votes[this.#me] !== undefined) {
      t.pendingVote = undefined;
      return false;
    }
    if (height >= sub.closesAt) return false;
    if (t.pendingVote !== undefined) {
      if (this.#ctx!.ledger.mempool().has(Buffer.from(t.pendingVote, "hex"))) return false;
      this.#ctx!.logger.warn("a vote left the mempool without counting", {
        submission: id,
        tx: t.pendingVote,
      });
      t.pendingVote = undefined;
    }
    return t.voteAttempts < (this.#options.maxVoteAttempts ?? 3);
  }

  /** Gets the blob: from the local store, else from its holders into the store. */
  async #load(id: string, t: Tracked, sub: Submission, height: number): Promise<void> {
    const ctx = this.#ctx!;
    const { blobs, blobClient } = ctx.stores;
    if (!blobs.has(t.contentHash)) {
      const holders = this.#holders(sub);
      const started = Date.now();
      try {
        await blobClient.fetchBlobTo(blobs, t.contentHash, t.size, holders, { signal: ctx.signal });
      } catch (err) {
        if (ctx.signal.aborted) return;
        t.fetchFailures++;
        t.retryAt = height + 2 ** Math.min(t.fetchFailures - 1, 3);
        t.lastError = err instanceof DeepshardError ? `${err.code}: ${err.shortMessage}` : `${err}`;
        this.#metrics?.fetches.inc({ outcome: "failed" });
        const informantPeer = safePeer(t.informant);
        const attempts = (err instanceof BlobError ? err.meta.attempts : undefined) as
          | { peer: string; code: string }[]
          | undefined;
        const own = attempts?.find((a) => a.peer === informantPeer && INVALID.has(a.code));
        if (own) t.invalid = `the informant serves a blob that fails its announcement (${own.code})`;
        ctx.events.emit({
          type: "validator.fetch_failed",
          submission: id,
          contentHash: t.contentHash,
          error: t.lastError,
          invalid: t.invalid !== undefined,
        });
        ctx.logger.info("could not fetch a submission", { submission: id, error: t.lastError });
        return;
      }
      this.#metrics?.fetches.inc({ outcome: "ok" });
      this.#metrics?.fetchedBytes.inc(t.size);
      ctx.events.emit({
        type: "validator.fetched",
        submission: id,
        contentHash: t.contentHash,
        size: t.size,
        ms: Date.now() - started,
      });
    }
    t.texts = segmentTexts(await blobs.get(t.contentHash));
  }

  #holders(sub: Submission): RequestTarget[] {
    const self = this.#ctx!.host.peerId.toString();
    const out = new Set<string>();
    const add = (peer: string | undefined) => {
      if (peer !== undefined && peer !== self) out.add(peer);
    };
    add(safePeer(sub.informant));
    for (const voter of Object.keys(sub.votes).sort()) add(safePeer(voter));
    for (const peer of this.#ctx!.host.peers()) add(peer.toString());
    return [...out].slice(0, this.#options.maxHolders ?? 8);
  }

  async #vote(
    id: string,
    t: Tracked,
    height: number,
    scoring: { corroboration: CorroborationIndex; surprise: SurpriseModel | undefined } | undefined,
    verdict: VoteRecord["verdict"],
    reason?: string,
  ): Promise<void> {
    const ctx = this.#ctx!;
    const params = ctx.ledger.state().tables.params.get("params")!.data;
    const weights = Object.fromEntries(CRITERIA.map((c, i) => [c, params.criteriaWeightsBps[i] ?? 0]));
    const started = performance.now();
    let scores = ZERO;
    let segmentWeights: { offset: number; length: number; weight: number }[] | undefined;
    let segments = 0;
    let judged = false;
    if (scoring) {
      const context: ScoringContext = {
        corpus: this.#corpus,
        corroboration: scoring.corroboration,
        informant: t.informant,
        ...(scoring.surprise ?? {}),
      };
      // Scoring is CPU work on the thread consensus runs on: it pauses every few milliseconds.
      const breathe = breather();
      const novelty = DEFAULT_SCORERS.novelty;
      const result = await scoreSubmission(await ctx.stores.blobs.get(t.contentHash), context, {
        scorers: {
          novelty: async (segment, c) => {
            await breathe();
            return novelty(segment, c);
          },
        },
        judge: this.#options.judge,
        criteriaWeights: weights,
        signal: ctx.signal,
      });
      scores = result.scores;
      segmentWeights = result.segmentWeights;
      segments = result.segments.length;
      judged = result.judge.used;
      if (result.judge.error)
        ctx.logger.warn("the judge failed; heuristics used", { error: result.judge.error });
    }
    const ms = Math.round(performance.now() - started);
    this.#metrics?.scoringSeconds.inc(ms / 1000);
    t.voteAttempts++;
    let tx: string;
    try {
      tx = hex(
        await ctx.send({
          type: "data.vote",
          submission: Buffer.from(id, "hex"),
          scores,
          ...(segmentWeights === undefined ? {} : { segmentWeights }),
        }),
      );
    } catch (err) {
      const error = err instanceof DeepshardError ? `${err.code}: ${err.shortMessage}` : `${err}`;
      this.#metrics?.votes.inc({ verdict: "refused" });
      ctx.events.emit({ type: "validator.vote_refused", submission: id, contentHash: t.contentHash, error });
      ctx.logger.warn("the vote was refused", { submission: id, error });
      return;
    }
    t.pendingVote = tx;
    const combined = Math.floor(
      CRITERIA.reduce((a, c, i) => a + scores[c] * (params.criteriaWeightsBps[i] ?? 0), 0) / 10_000,
    );
    const record: VoteRecord = {
      submission: id,
      contentHash: t.contentHash,
      informant: t.informant,
      height,
      tx,
      scores,
      combined,
      segments,
      segmentWeights: segmentWeights?.length ?? 0,
      verdict,
      judge: judged,
      ms,
      ...(reason === undefined ? {} : { reason }),
    };
    this.#votes.push(record);
    if (this.#votes.length > RECENT_VOTES) this.#votes.shift();
    this.#metrics?.votes.inc({ verdict });
    ctx.events.emit({ ...record, type: "validator.vote" });
    ctx.logger.info("voted on data", { submission: id, verdict, combined, ms });
  }

  /** A submission left the table: accepted data joins the corpus, other blobs are let go. */
  async #closed(t: Tracked, state: LedgerState): Promise<void> {
    const record = state.tables.data.get(t.contentHash);
    if (record?.status === "accepted") {
      if (t.texts === undefined && !this.#ctx!.stores.blobs.has(t.contentHash)) {
        await this.#fetchAccepted(t.contentHash, t.size, t.informant);
      }
      await this.#addToCorpus(t.contentHash, t.texts);
    } else if (t.informant !== this.#me) {
      // The informant role of this node keeps its own blobs until it has seen the outcome.
      await this.#ctx!.stores.blobs.delete(t.contentHash);
    }
  }

  async #addToCorpus(contentHash: string, texts?: string[]): Promise<void> {
    if (this.#inCorpus.has(contentHash)) return;
    const blobs = this.#ctx!.stores.blobs;
    if (texts === undefined && !blobs.has(contentHash)) return;
    const segments = texts ?? segmentTexts(await blobs.get(contentHash));
    const breathe = breather();
    for (const [i, s] of segments.entries()) {
      this.#corpus.add(`${contentHash}/${i}`, signatureOf(s));
      await breathe();
    }
    this.#inCorpus.add(contentHash);
    this.#ctx!.events.emit({ type: "validator.corpus", contentHash, segments: segments.length });
  }

  /**
   * The corpus after a restart: the accepted data of the ledger whose blobs this node holds; the
   * ones it lacks are fetched when the ledger still names their size (queued or in a round). Blobs
   * of rejected or expired data of other informants are let go.
   */
  async #rebuildCorpus(): Promise<void> {
    const ctx = this.#ctx!;
    const state = ctx.ledger.state();
    const sizes = new Map<string, number>();
    for (const [, q] of state.tables.queue) sizes.set(q.contentHash, q.size);
    for (const [, r] of state.tables.rounds) for (const q of r.batch) sizes.set(q.contentHash, q.size);
    let missing = 0;
    for (const [contentHash, record] of state.tables.data) {
      if (ctx.signal.aborted) return;
      if (record.status !== "accepted") continue;
      if (!ctx.stores.blobs.has(contentHash)) {
        const size = sizes.get(contentHash);
        if (size !== undefined) await this.#fetchAccepted(contentHash, size, record.informant);
      }
      if (ctx.stores.blobs.has(contentHash)) await this.#addToCorpus(contentHash);
      else missing++;
    }
    for (const { hash } of ctx.stores.blobs.list()) {
      const record = state.tables.data.get(hash);
      if (
        record &&
        (record.status === "rejected" || record.status === "expired") &&
        record.informant !== this.#me
      )
        await ctx.stores.blobs.delete(hash);
    }
    ctx.logger.info("accepted corpus indexed", {
      submissions: this.#inCorpus.size,
      segments: this.#corpus.size,
      missing,
    });
  }

  async #fetchAccepted(contentHash: string, size: number, informant: string): Promise<void> {
    const ctx = this.#ctx!;
    const self = ctx.host.peerId.toString();
    const holders = [safePeer(informant), ...ctx.host.peers().map(String)].filter(
      (p): p is string => p !== undefined && p !== self,
    );
    try {
      await ctx.stores.blobClient.fetchBlobTo(ctx.stores.blobs, contentHash, size, holders, {
        signal: ctx.signal,
      });
    } catch (err) {
      ctx.logger.debug("accepted data not fetched", { contentHash, error: `${err}` });
    }
  }

  /** The claims of every fetched open submission, with who staked on them. */
  async #corroborationIndex(): Promise<CorroborationIndex> {
    const loaded = [...this.#tracked].filter(([, t]) => t.texts !== undefined);
    const key = loaded.map(([id]) => id).join(",");
    if (this.#corroboration?.key !== key) {
      const index = new CorroborationIndex();
      const breathe = breather();
      // Claims corroborate only across informants: with one informant the index stays empty.
      const informants = new Set(loaded.map(([, t]) => t.informant));
      for (const [, t] of informants.size > 1 ? loaded : []) {
        for (const text of t.texts!) {
          index.addSubmission(t.informant, text);
          await breathe();
        }
      }
      this.#corroboration = { key, index };
    }
    return this.#corroboration.index;
  }

  async #surpriseModel(state: LedgerState): Promise<SurpriseModel | undefined> {
    const source = this.#options.surprise;
    if (!source) return undefined;
    const weightsId = state.tables.meta.get("meta")!.canonicalWeightsId;
    if (this.#surprise?.weightsId !== weightsId) {
      let model: SurpriseModel | undefined;
      try {
        model = await source(weightsId, this.#ctx!.signal);
      } catch (err) {
        this.#ctx!.logger.warn("the canonical model's surprise is unavailable", { error: `${err}` });
      }
      this.#surprise = { weightsId, model };
    }
    return this.#surprise.model;
  }
}

/** The peer id of an account (hex public key); undefined for a key that is not one. */
function safePeer(account: string): string | undefined {
  try {
    return peerIdFromAccount(Buffer.from(account, "hex")).toString();
  } catch {
    return undefined;
  }
}

/** The texts validators read in a blob: its segments (none when it is not UTF-8). */
function segmentTexts(blob: Uint8Array): string[] {
  try {
    return splitSegments(blob).map((s) => s.text);
  } catch {
    return [];
  }
}

/** Most time scoring runs before it lets consensus and the network have the thread. */
const SLICE_MS = 20;

/** Yields to the event loop once `SLICE_MS` of work has passed since the last yield. */
function breather(): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < SLICE_MS) return;
    await new Promise((r) => setImmediate(r));
    last = performance.now();
  };
}
