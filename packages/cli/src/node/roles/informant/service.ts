/**
 * The informant role: takes data from the CLI (`POST /informant/submit`, the blob's bytes in the
 * body), keeps it in the node's blob store (whose blob service serves it to the validators that
 * fetch it), sends `data.submit` with the node key, and follows each submission to its outcome:
 * accepted (stake back + reward), rejected (stake slashed) or expired (no quorum: stake back).
 * Outcomes are announced as `informant.*` events and counted in /metrics; a rejected or expired
 * blob is deleted (the ledger never takes the same content again), an accepted one is kept for
 * the trainers.
 *
 * Routes:
 *   GET  /informant/status                   limits (maxBytes, minStake) and this node's submissions
 *   POST /informant/submit?stake=N[&metadata=…]   body: the blob; answers 202 with the submission id
 *   GET  /informant/submissions/:id          one submission: pending, open, accepted, …
 */
import type { DataRecord, LedgerState } from "@deepshard/ledger";
import { DeepshardError, MAX_METADATA_BYTES } from "@deepshard/protocol";
import { Counter } from "prom-client";
import { ApiError, type ApiRequest, Reply } from "../../api.ts";
import { BlobError } from "../../blobs/index.ts";
import type { RoleContext, RoleService } from "../../service.ts";

/**
 * The node's own limit on a submission when DEEPSHARD_INFORMANT_MAX_BYTES does not set one: what a
 * validator scores in well under the default 20-block window (scoring runs at about 0.4 MiB/s on
 * one core, `npm run bench cli`), since a blob not scored in its window expires.
 */
export const DEFAULT_MAX_SUBMISSION_BYTES = 4 * 1024 * 1024;

export interface InformantOptions {
  /** Largest blob this node takes (it is also capped by the chain's `data.maxSize`). */
  maxBytes?: number | undefined;
}

export type SubmissionStatus = "pending" | "open" | "accepted" | "rejected" | "expired" | "failed";

/** What `GET /informant/submissions/:id` answers; amounts are decimal strings on the wire. */
export interface SubmissionView {
  submission: string;
  contentHash: string;
  status: SubmissionStatus;
  /** Unknown (undefined) for submissions made before the node's last restart and already closed. */
  size?: number | undefined;
  stake?: bigint | undefined;
  submittedAt?: number | undefined;
  closesAt?: number | undefined;
  votes?: number | undefined;
  /** Once closed: the aggregated value and the threshold it had to reach (basis points). */
  value?: number | undefined;
  threshold?: number | undefined;
  closedAt?: number | undefined;
  reward?: bigint | undefined;
  /**
   * The submission's effect on the balance, fee excluded: +reward when accepted, −stake when
   * rejected, 0 when expired (the stake came back).
   */
  net?: bigint | undefined;
  /** Why a failed submission's transaction failed. */
  log?: string | undefined;
}

interface Mine {
  contentHash: string;
  size?: number | undefined;
  stake?: bigint | undefined;
  status: SubmissionStatus;
  log?: string | undefined;
}

const FINAL = new Set<SubmissionStatus>(["accepted", "rejected", "expired", "failed"]);
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

export class InformantService implements RoleService {
  readonly name = "informant";
  readonly #options: InformantOptions;
  #ctx: RoleContext | undefined;
  /** This node's submissions by id (the data.submit transaction's hash), oldest first. */
  readonly #mine = new Map<string, Mine>();
  #off: (() => void) | undefined;
  #following: Promise<void> = Promise.resolve();
  #outcomes: Counter<"outcome"> | undefined;
  #amounts: Counter<"what"> | undefined;

  constructor(options: InformantOptions = {}) {
    this.#options = options;
  }

  async start(ctx: RoleContext): Promise<void> {
    this.#ctx = ctx;
    const registers = [ctx.metrics.registry];
    this.#outcomes = new Counter({
      name: "deepshard_informant_submissions_total",
      help: "This node's data submissions by outcome (submitted, accepted, rejected, expired, failed)",
      labelNames: ["outcome"],
      registers,
    });
    this.#amounts = new Counter({
      name: "deepshard_informant_tokens_total",
      help: "Tokens this node's submissions staked, earned as rewards, and lost to slashing",
      labelNames: ["what"],
      registers,
    });
    this.#recover(ctx.ledger.state());
    ctx.api.route("GET", "/informant/status", () => ({
      address: ctx.account.address,
      maxBytes: this.maxBytes(),
      minStake: this.#params().minStake,
      votingWindow: this.#params().votingWindow,
      submissions: [...this.#mine.keys()].map((id) => this.view(id)),
    }));
    ctx.api.route("POST", "/informant/submit", (req) => this.#submit(req));
    ctx.api.route("GET", "/informant/submissions/:id", (req) => {
      const id = req.params.id!.toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(id)) throw new ApiError(400, "BAD_HASH", "a submission id is 64 hex digits");
      const view = this.view(id);
      if (!view) throw new ApiError(404, "NOT_FOUND", `this node made no submission ${id}`);
      return view;
    });
    // Commits are followed one after the other, never concurrently (each step reads the state once).
    this.#off = ctx.ledger.onCommit(() => {
      this.#following = this.#following
        .then(() => this.#follow())
        .catch((err: unknown) => ctx.logger.error("following submissions failed", { error: `${err}` }));
    });
  }

  async stop(): Promise<void> {
    this.#off?.();
    await this.#following;
  }

  /** The largest blob this node takes now: its own limit, capped by the chain's. */
  maxBytes(): number {
    return Math.min(this.#options.maxBytes ?? DEFAULT_MAX_SUBMISSION_BYTES, this.#params().maxSize);
  }

  /** A submission of this node as it stands; undefined for ids it did not make. */
  view(id: string): SubmissionView | undefined {
    const mine = this.#mine.get(id);
    if (!mine) return undefined;
    const state = this.#ctx!.ledger.state();
    const base: SubmissionView = {
      submission: id,
      contentHash: mine.contentHash,
      status: mine.status,
      size: mine.size,
      stake: mine.stake,
    };
    const sub = state.tables.submissions.get(id);
    if (sub) {
      return {
        ...base,
        status: "open",
        size: sub.size,
        stake: sub.stake,
        submittedAt: sub.submittedAt,
        closesAt: sub.closesAt,
        votes: Object.keys(sub.votes).length,
      };
    }
    const record = state.tables.data.get(mine.contentHash);
    if (record && record.submission === id && record.status !== "open") {
      return { ...base, ...closedView(record, mine.stake) };
    }
    return mine.log === undefined ? base : { ...base, log: mine.log };
  }

  #params() {
    return this.#ctx!.ledger.state().tables.params.get("params")!.data;
  }

  /** Submissions this node made before a restart: every data record naming its account. */
  #recover(state: LedgerState): void {
    const me = hex(this.#ctx!.account.publicKey);
    for (const [contentHash, record] of state.tables.data) {
      if (record.informant !== me) continue;
      const sub = state.tables.submissions.get(record.submission);
      this.#mine.set(record.submission, {
        contentHash,
        status: record.status,
        size: sub?.size,
        stake: sub?.stake,
      });
    }
  }

  async #submit(req: ApiRequest): Promise<Reply> {
    const ctx = this.#ctx!;
    const params = this.#params();
    const stake = parseStake(req.query.get("stake"), params.minStake);
    const metadata = req.query.get("metadata") ?? undefined;
    if (metadata !== undefined && Buffer.byteLength(metadata) > MAX_METADATA_BYTES) {
      throw new ApiError(400, "BAD_METADATA", `metadata is limited to ${MAX_METADATA_BYTES} bytes`);
    }
    const max = this.maxBytes();
    const declared = Number(req.raw.headers["content-length"] ?? Number.NaN);
    if (declared > max) throw tooLarge(declared, max);
    let stored: { hash: string; size: number };
    try {
      stored = await ctx.stores.blobs.put(req.raw, { maxBytes: max, signal: req.signal });
    } catch (err) {
      if (err instanceof BlobError && err.code === "TOO_LARGE") throw tooLarge(undefined, max);
      throw err;
    }
    const { hash: contentHash, size } = stored;
    const state = ctx.ledger.state();
    const earlier = state.tables.data.get(contentHash);
    if (earlier) {
      await this.#forget(contentHash);
      throw new ApiError(409, "ALREADY_SUBMITTED", `this content was already submitted (${earlier.status})`, {
        meta: { submission: earlier.submission },
      });
    }
    if (size === 0 || !isText(await ctx.stores.blobs.get(contentHash))) {
      await this.#forget(contentHash);
      throw new ApiError(400, "NOT_TEXT", "informants submit UTF-8 plain text or JSONL, and not empty");
    }
    let id: string;
    try {
      id = hex(
        await ctx.send({
          type: "data.submit",
          contentHash: Buffer.from(contentHash, "hex"),
          size,
          stake,
          ...(metadata === undefined ? {} : { metadata }),
        }),
      );
    } catch (err) {
      await this.#forget(contentHash);
      if (err instanceof DeepshardError) {
        throw new ApiError(400, err.code, err.shortMessage, { details: err.details });
      }
      throw err;
    }
    this.#mine.set(id, { contentHash, size, stake, status: "pending" });
    this.#outcomes?.inc({ outcome: "submitted" });
    this.#amounts?.inc({ what: "staked" }, Number(stake));
    ctx.events.emit({ type: "informant.submitted", submission: id, contentHash, size, stake });
    ctx.logger.info("data submitted", { submission: id, contentHash, size, stake });
    return new Reply(202, { submission: id, contentHash, size, stake });
  }

  /**
   * Deletes a blob unless something still needs it: a pending submission of this node, or open or
   * accepted data of anyone (the validator role of this node may hold it too).
   */
  async #forget(contentHash: string): Promise<void> {
    for (const m of this.#mine.values()) {
      if (m.contentHash === contentHash && m.status === "pending") return;
    }
    const record = this.#ctx!.ledger.state().tables.data.get(contentHash);
    if (record && (record.status === "open" || record.status === "accepted")) return;
    await this.#ctx!.stores.blobs.delete(contentHash);
  }

  /** After a commit: which of this node's submissions got in, failed, or closed. */
  async #follow(): Promise<void> {
    const ctx = this.#ctx!;
    const state = ctx.ledger.state();
    for (const [id, mine] of this.#mine) {
      if (FINAL.has(mine.status)) continue;
      const open = state.tables.submissions.get(id);
      if (open) {
        if (mine.status === "pending") {
          mine.status = "open";
          ctx.events.emit({
            type: "informant.included",
            submission: id,
            contentHash: mine.contentHash,
            height: open.submittedAt,
            closesAt: open.closesAt,
          });
        }
        continue;
      }
      const record = state.tables.data.get(mine.contentHash);
      if (record && record.submission === id && record.status !== "open") {
        await this.#closed(id, mine, record);
        continue;
      }
      if (mine.status === "pending" && !ctx.ledger.mempool().has(Buffer.from(id, "hex"))) {
        await this.#failed(id, mine);
      }
    }
  }

  async #closed(id: string, mine: Mine, record: DataRecord): Promise<void> {
    const ctx = this.#ctx!;
    mine.status = record.status;
    const view = closedView(record, mine.stake);
    this.#outcomes?.inc({ outcome: record.status });
    if (record.status === "accepted") this.#amounts?.inc({ what: "rewarded" }, Number(record.reward));
    if (record.status === "rejected" && mine.stake !== undefined)
      this.#amounts?.inc({ what: "slashed" }, Number(mine.stake));
    ctx.events.emit({
      type: "informant.outcome",
      submission: id,
      contentHash: mine.contentHash,
      stake: mine.stake,
      ...view,
    });
    ctx.logger.info(`submission ${record.status}`, {
      submission: id,
      value: record.value,
      threshold: record.threshold,
      reward: record.reward,
      net: view.net,
    });
    if (record.status !== "accepted") await this.#forget(mine.contentHash);
  }

  /** A pending submission left the mempool without opening: its transaction failed, or was dropped. */
  async #failed(id: string, mine: Mine): Promise<void> {
    const ctx = this.#ctx!;
    const where = await ctx.ledger.findTx(Buffer.from(id, "hex"));
    let log = "dropped from the mempool";
    if (where) {
      const result = (await ctx.ledger.block(where.height))?.txResults?.[where.index];
      log = result?.log || `failed in block ${where.height}`;
    }
    mine.status = "failed";
    mine.log = log;
    this.#outcomes?.inc({ outcome: "failed" });
    ctx.events.emit({ type: "informant.failed", submission: id, contentHash: mine.contentHash, log });
    ctx.logger.warn("submission failed", { submission: id, log });
    await this.#forget(mine.contentHash);
  }
}

function closedView(record: DataRecord, stake: bigint | undefined): Partial<SubmissionView> {
  const net =
    record.status === "accepted"
      ? record.reward
      : record.status === "rejected"
        ? stake === undefined
          ? undefined
          : -stake
        : 0n;
  return {
    status: record.status,
    value: record.value,
    threshold: record.threshold,
    closedAt: record.closedAt,
    reward: record.reward,
    net,
  };
}

function parseStake(text: string | null, minStake: bigint): bigint {
  if (text === null || !/^[0-9]{1,20}$/.test(text) || BigInt(text) >= 2n ** 64n) {
    throw new ApiError(400, "BAD_STAKE", "stake must be a whole number of tokens (query ?stake=N)");
  }
  const stake = BigInt(text);
  if (stake < minStake) {
    throw new ApiError(400, "BAD_STAKE", `stake ${stake} is below the chain's minimum of ${minStake}`);
  }
  return stake;
}

function tooLarge(size: number | undefined, max: number): ApiError {
  return new ApiError(
    413,
    "TOO_LARGE",
    size === undefined
      ? `the submission exceeds this node's limit of ${max} bytes`
      : `the submission is ${size} bytes; this node accepts at most ${max}`,
    { meta: { max } },
  );
}

const strict = new TextDecoder("utf-8", { fatal: true });
function isText(bytes: Uint8Array): boolean {
  try {
    return strict.decode(bytes).trim() !== "";
  } catch {
    return false;
  }
}
