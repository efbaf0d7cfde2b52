/**
 * The deterministic state machine: `applyBlock(state, block) → next state`. Integers only, no
 * clock (time comes from the header), no randomness but the block hash (the training seed).
 * Every iteration the result depends on goes through sorted keys.
 *
 * A block runs in three steps:
 *  1. begin: downtime from the last commit (missed blocks, jailing), the proposer's block reward;
 *  2. each transaction: stateless checks, then the ante (nonce must be the account's nonce + 1,
 *     the fee is paid to the proposer) — a transaction failing here changes nothing; then its
 *     effect — a failure there is rolled back but the fee and nonce stay spent;
 *  3. end: data voting windows close, the training round advances, unbonding matures, the price
 *     follows the accumulated value, and the validator set is recomputed.
 *
 * Signatures are not checked here: the caller (mempool, ABCI application) authenticates every
 * envelope once before it reaches the state machine.
 */
import {
  CRITERIA,
  merkleRoot,
  type SignedTx,
  signingBytes,
  type TxPayload,
  txHash,
  verify,
} from "@deepshard/protocol";
import { aggregateScores, aggregateSegments, BPS } from "./aggregate.ts";
import { StateError, TxError, type TxErrorCode, txError } from "./errors.ts";
import { priceAt } from "./fixedpoint.ts";
import { fromHex, toHex, trainingCommitment } from "./hashing.ts";
import type { Params } from "./params.ts";
import { type LedgerState, type StateChanges, WorkingState } from "./tables.ts";
import type {
  Meta,
  QueueEntry,
  Round,
  Segment,
  TrainerSubmission,
  Validator,
  ValidatorPower,
} from "./types.ts";

/** A transaction whose signature the caller has verified; `hash` saves recomputing the tx id. */
export interface TxInput {
  tx: SignedTx;
  hash?: Uint8Array | undefined;
}

export interface BlockInput {
  height: number;
  /** Milliseconds since the Unix epoch, from the header. */
  time: number;
  /** The block hash: the beacon that seeds training rounds. */
  hash: Uint8Array;
  proposer: Uint8Array;
  /** Validators whose precommit for the previous block is in this block's last commit; null at height 1. */
  lastCommitSigners: readonly Uint8Array[] | null;
  txs: readonly TxInput[];
}

export interface TxOutcome {
  /** "OK", or the code of the error that refused or failed the transaction. */
  code: "OK" | TxErrorCode;
  message: string;
  /** True when the fee was paid and the nonce consumed (the ante passed). */
  charged: boolean;
}

export interface BlockResult {
  state: LedgerState;
  changes: StateChanges;
  txResults: TxOutcome[];
  /** The active validator set for the next height. */
  validators: readonly ValidatorPower[];
}

const META = "meta";
const PARAMS = "params";
const PAD = 12;
const pad = (n: number): string => n.toString().padStart(PAD, "0");

/** What the transaction handlers of one block share. */
export interface Ctx {
  ws: WorkingState;
  params: Params;
  height: number;
  proposer: string | undefined;
  /** Power of each active validator during this block. */
  power: ReadonlyMap<string, bigint>;
  totalPower: bigint;
}

function blockReward(params: Params, height: number): bigint {
  if (params.blockRewardHalvingInterval === 0) return params.blockReward;
  const halvings = Math.floor(height / params.blockRewardHalvingInterval);
  return halvings >= 64 ? 0n : params.blockReward >> BigInt(halvings);
}

function maxBigInt(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function mulBps(amount: bigint, bps: number): bigint {
  return (amount * BigInt(bps)) / BigInt(BPS);
}

export class StateMachine {
  /** Applies a block; never mutates `state`. */
  applyBlock(state: LedgerState, block: BlockInput): BlockResult {
    const ws = new WorkingState(state);
    const meta = ws.get("meta", META)!;
    const params = ws.get("params", PARAMS)!;
    if (block.height !== meta.height + 1) {
      throw new StateError("STATE_BAD_BLOCK", `block height ${block.height} does not follow ${meta.height}`);
    }
    const ctx = this.context(ws, params, block.height, toHex(block.proposer));
    this.beginBlock(ctx, block);
    const txResults = block.txs.map((input) => this.runTx(ctx, input));
    this.endBlock(ctx, block);
    const { state: next, changes } = ws.seal();
    return { state: next, changes, txResults, validators: ws.get("meta", META)!.validators };
  }

  /**
   * Whether `input` would be accepted on top of `state` at the next height (stateless checks,
   * ante, and the effect on a scratch copy). Throws the TxError that refuses it.
   */
  checkTx(state: LedgerState, input: TxInput): void {
    const ws = new WorkingState(state);
    const meta = ws.get("meta", META)!;
    const params = ws.get("params", PARAMS)!;
    const ctx = this.context(ws, params, meta.height + 1, undefined);
    this.ante(ctx, input.tx);
    this.execute(ctx, input);
  }

  /**
   * The longest prefix-respecting selection of `inputs` (at most `max`) that succeed one after
   * the other on top of `state`: what a proposer puts in its block.
   */
  selectTxs(state: LedgerState, inputs: readonly TxInput[], max: number): TxInput[] {
    const ws = new WorkingState(state);
    const meta = ws.get("meta", META)!;
    const ctx = this.context(ws, ws.get("params", PARAMS)!, meta.height + 1, undefined);
    const selected: TxInput[] = [];
    for (const input of inputs) {
      if (selected.length >= max) break;
      const mark = ws.mark();
      try {
        this.ante(ctx, input.tx);
        this.execute(ctx, input);
        selected.push(input);
      } catch (err) {
        if (!(err instanceof TxError)) throw err;
        ws.revert(mark);
      }
    }
    return selected;
  }

  private context(ws: WorkingState, params: Params, height: number, proposer: string | undefined): Ctx {
    const meta = ws.get("meta", META)!;
    const power = new Map<string, bigint>();
    let totalPower = 0n;
    for (const v of meta.validators) {
      power.set(v.address, v.power);
      totalPower += v.power;
    }
    return { ws, params, height, proposer, power, totalPower };
  }

  // ---- supply movements: the only places where tokens appear or vanish ----

  protected meta(ctx: Ctx): Meta {
    return ctx.ws.get("meta", META)!;
  }

  protected setMeta(ctx: Ctx, patch: Partial<Meta>): void {
    ctx.ws.set("meta", META, { ...this.meta(ctx), ...patch });
  }

  protected credit(ctx: Ctx, address: string, amount: bigint): void {
    if (amount === 0n) return;
    const acct = ctx.ws.get("accounts", address);
    ctx.ws.set("accounts", address, { balance: (acct?.balance ?? 0n) + amount, nonce: acct?.nonce ?? 0n });
  }

  protected debit(ctx: Ctx, address: string, amount: bigint): void {
    const acct = ctx.ws.get("accounts", address);
    const balance = acct?.balance ?? 0n;
    if (balance < amount) {
      throw txError("TX_INSUFFICIENT_FUNDS", `balance ${balance} is below ${amount}`, { meta: { address } });
    }
    ctx.ws.set("accounts", address, { balance: balance - amount, nonce: acct?.nonce ?? 0n });
  }

  /** New tokens: credited and counted in `minted`. */
  protected mint(ctx: Ctx, to: string, amount: bigint): void {
    if (amount === 0n) return;
    this.credit(ctx, to, amount);
    this.setMeta(ctx, { minted: this.meta(ctx).minted + amount });
  }

  /** Tokens already taken out of balances, bonds or escrow, destroyed and counted in `burned`. */
  protected burn(ctx: Ctx, amount: bigint): void {
    if (amount === 0n) return;
    this.setMeta(ctx, { burned: this.meta(ctx).burned + amount });
  }

  // ---- transactions ----

  private runTx(ctx: Ctx, input: TxInput): TxOutcome {
    const start = ctx.ws.mark();
    try {
      this.ante(ctx, input.tx);
    } catch (err) {
      ctx.ws.revert(start);
      return failure(err, false);
    }
    const afterAnte = ctx.ws.mark();
    try {
      this.execute(ctx, input);
      return { code: "OK", message: "", charged: true };
    } catch (err) {
      ctx.ws.revert(afterAnte);
      return failure(err, true);
    }
  }

  private ante(ctx: Ctx, tx: SignedTx): void {
    const p = tx.payload;
    const meta = this.meta(ctx);
    if (p.v !== 1) throw txError("TX_MALFORMED", `unsupported transaction version ${p.v}`);
    if (p.chainId !== meta.chainId) {
      throw txError("TX_WRONG_CHAIN", `chain id ${p.chainId} is not ${meta.chainId}`);
    }
    if (!(tx.signer instanceof Uint8Array) || tx.signer.length !== 32) {
      throw txError("TX_MALFORMED", "signer must be a 32-byte public key");
    }
    if (p.fee < ctx.params.minFee)
      throw txError("TX_FEE_TOO_LOW", `fee ${p.fee} is below ${ctx.params.minFee}`);
    this.statelessCheck(p);
    const signer = toHex(tx.signer);
    const acct = ctx.ws.get("accounts", signer);
    const expected = (acct?.nonce ?? 0n) + 1n;
    if (p.nonce !== expected) {
      throw txError("TX_BAD_NONCE", `nonce ${p.nonce} is not the expected ${expected}`, {
        meta: { expected, got: p.nonce },
      });
    }
    const balance = acct?.balance ?? 0n;
    if (balance < p.fee)
      throw txError("TX_INSUFFICIENT_FUNDS", `balance ${balance} cannot pay the fee ${p.fee}`);
    ctx.ws.set("accounts", signer, { balance: balance - p.fee, nonce: p.nonce });
    if (ctx.proposer !== undefined) this.credit(ctx, ctx.proposer, p.fee);
  }

  private statelessCheck(p: TxPayload): void {
    switch (p.type) {
      case "transfer":
      case "bond":
      case "unbond":
        if (p.amount <= 0n) throw txError("TX_MALFORMED", "amount must be positive");
        return;
      case "data.submit":
        if (p.size <= 0) throw txError("TX_MALFORMED", "size must be positive");
        return;
      case "data.vote":
        for (const c of CRITERIA) {
          const s = p.scores[c];
          if (!Number.isInteger(s) || s < 0 || s > BPS)
            throw txError("TX_MALFORMED", `score ${c} out of range`);
        }
        return;
      case "training.verdict":
        if (p.verdicts.length === 0) throw txError("TX_MALFORMED", "no verdicts");
        return;
      default:
        return;
    }
  }

  private execute(ctx: Ctx, input: TxInput): void {
    const tx = input.tx;
    const p = tx.payload;
    const signer = toHex(tx.signer);
    switch (p.type) {
      case "transfer":
        this.debit(ctx, signer, p.amount);
        this.credit(ctx, toHex(p.to), p.amount);
        return;
      case "bond":
        this.bond(ctx, signer, p.amount);
        return;
      case "unbond":
        this.unbond(ctx, signer, p.amount);
        return;
      case "data.submit":
        this.submitData(ctx, signer, input, p);
        return;
      case "data.vote":
        this.voteData(ctx, signer, p);
        return;
      case "training.commit":
        this.commitTraining(ctx, signer, p.round, toHex(p.commitment));
        return;
      case "training.reveal":
        this.revealTraining(ctx, signer, p.round, p.weightsId, p.salt);
        return;
      case "training.verdict":
        this.verdictTraining(ctx, signer, p.round, p.verdicts);
        return;
      case "weights.buy":
        this.buyWeights(ctx, signer, toHex(p.weightsId), p.maxPrice);
        return;
      case "evidence":
        this.evidence(ctx, p.voteA, p.voteB);
        return;
    }
  }

  private bond(ctx: Ctx, signer: string, amount: bigint): void {
    const v = ctx.ws.get("validators", signer);
    if (v?.tombstoned) throw txError("TX_TOMBSTONED", "a tombstoned validator cannot bond");
    this.debit(ctx, signer, amount);
    ctx.ws.set("validators", signer, {
      bonded: (v?.bonded ?? 0n) + amount,
      jailedUntil: v?.jailedUntil ?? 0,
      tombstoned: false,
      missed: v?.missed ?? 0,
    });
  }

  private unbond(ctx: Ctx, signer: string, amount: bigint): void {
    const v = ctx.ws.get("validators", signer);
    if (!v || v.bonded < amount) {
      throw txError("TX_INSUFFICIENT_FUNDS", `bonded stake ${v?.bonded ?? 0n} is below ${amount}`);
    }
    const bonded = v.bonded - amount;
    if (bonded === 0n && !v.tombstoned && v.jailedUntil <= ctx.height) ctx.ws.delete("validators", signer);
    else ctx.ws.set("validators", signer, { ...v, bonded });
    const meta = this.meta(ctx);
    const matureAt = ctx.height + ctx.params.unbondingDelay;
    ctx.ws.set("unbonding", `${pad(matureAt)}/${pad(meta.nextUnbondingSeq)}`, {
      owner: signer,
      amount,
      matureAt,
    });
    this.setMeta(ctx, { nextUnbondingSeq: meta.nextUnbondingSeq + 1 });
  }

  private submitData(
    ctx: Ctx,
    signer: string,
    input: TxInput,
    p: Extract<TxPayload, { type: "data.submit" }>,
  ): void {
    const dp = ctx.params.data;
    if (p.stake < dp.minStake) throw txError("TX_MALFORMED", `stake ${p.stake} is below ${dp.minStake}`);
    if (p.size > dp.maxSize) throw txError("TX_LIMIT", `size ${p.size} exceeds ${dp.maxSize}`);
    const contentHash = toHex(p.contentHash);
    if (ctx.ws.get("data", contentHash)) throw txError("TX_DUPLICATE", "this content was already submitted");
    this.debit(ctx, signer, p.stake);
    const id = toHex(input.hash ?? txHash(input.tx));
    ctx.ws.set("submissions", id, {
      informant: signer,
      contentHash,
      size: p.size,
      stake: p.stake,
      submittedAt: ctx.height,
      closesAt: ctx.height + dp.votingWindow,
      votes: {},
    });
    ctx.ws.set("data", contentHash, {
      informant: signer,
      submission: id,
      status: "open",
      value: 0,
      threshold: 0,
      closedAt: 0,
      reward: 0n,
    });
  }

  private voteData(ctx: Ctx, signer: string, p: Extract<TxPayload, { type: "data.vote" }>): void {
    if (!ctx.power.has(signer)) throw txError("TX_NOT_VALIDATOR", "only active validators vote on data");
    const id = toHex(p.submission);
    const sub = ctx.ws.get("submissions", id);
    if (!sub) throw txError("TX_UNKNOWN_TARGET", "no open submission with this id");
    if (ctx.height > sub.closesAt) throw txError("TX_WRONG_PHASE", "the voting window is closed");
    if (sub.votes[signer]) throw txError("TX_DUPLICATE", "this validator already voted on this submission");
    const segments: Segment[] = (p.segmentWeights ?? []).map((s) => ({
      offset: s.offset,
      length: s.length,
      weight: s.weight,
    }));
    for (const s of segments) {
      if (s.offset + s.length > sub.size) throw txError("TX_MALFORMED", "a segment extends past the blob");
    }
    const scores = CRITERIA.map((c) => p.scores[c]);
    ctx.ws.set("submissions", id, { ...sub, votes: { ...sub.votes, [signer]: { scores, segments } } });
  }

  private activeRound(ctx: Ctx, round: number): Round {
    const meta = this.meta(ctx);
    if (meta.activeRound !== round)
      throw txError("TX_UNKNOWN_TARGET", `round ${round} is not the active round`);
    return ctx.ws.get("rounds", pad(round))!;
  }

  private commitTraining(ctx: Ctx, signer: string, roundId: number, commitment: string): void {
    const round = this.activeRound(ctx, roundId);
    if (ctx.height > round.commitEnd) throw txError("TX_WRONG_PHASE", "the commit window is closed");
    if (round.trainers[signer]) throw txError("TX_DUPLICATE", "this trainer already committed");
    if (Object.keys(round.trainers).length >= ctx.params.training.maxTrainers) {
      throw txError("TX_LIMIT", "the round has its maximum number of trainers");
    }
    const stake = ctx.params.training.stake;
    this.debit(ctx, signer, stake);
    const entry: TrainerSubmission = { commitment, stake, weightsId: "", verdicts: {} };
    ctx.ws.set("rounds", pad(roundId), { ...round, trainers: { ...round.trainers, [signer]: entry } });
  }

  private revealTraining(
    ctx: Ctx,
    signer: string,
    roundId: number,
    weightsId: Uint8Array,
    salt: Uint8Array,
  ): void {
    const round = this.activeRound(ctx, roundId);
    if (ctx.height <= round.commitEnd || ctx.height > round.revealEnd) {
      throw txError("TX_WRONG_PHASE", "not in the reveal window");
    }
    const entry = round.trainers[signer];
    if (!entry) throw txError("TX_UNKNOWN_TARGET", "this trainer did not commit");
    if (entry.weightsId !== "") throw txError("TX_DUPLICATE", "already revealed");
    if (toHex(trainingCommitment(weightsId, salt)) !== entry.commitment) {
      throw txError("TX_COMMITMENT_MISMATCH", "sha256(weightsId ‖ salt) does not match the commitment");
    }
    ctx.ws.set("rounds", pad(roundId), {
      ...round,
      trainers: { ...round.trainers, [signer]: { ...entry, weightsId: toHex(weightsId) } },
    });
  }

  private verdictTraining(
    ctx: Ctx,
    signer: string,
    roundId: number,
    verdicts: readonly { trainer: Uint8Array; accept: boolean }[],
  ): void {
    if (!ctx.power.has(signer)) throw txError("TX_NOT_VALIDATOR", "only active validators give verdicts");
    const round = this.activeRound(ctx, roundId);
    if (ctx.height <= round.revealEnd || ctx.height > round.verdictEnd) {
      throw txError("TX_WRONG_PHASE", "not in the verdict window");
    }
    const trainers = { ...round.trainers };
    for (const verdict of verdicts) {
      const trainer = toHex(verdict.trainer);
      const entry = trainers[trainer];
      if (!entry || entry.weightsId === "")
        throw txError("TX_UNKNOWN_TARGET", "no revealed submission of this trainer");
      if (entry.verdicts[signer] !== undefined) throw txError("TX_DUPLICATE", "verdict already given");
      trainers[trainer] = { ...entry, verdicts: { ...entry.verdicts, [signer]: verdict.accept } };
    }
    ctx.ws.set("rounds", pad(roundId), { ...round, trainers });
  }

  private buyWeights(ctx: Ctx, signer: string, weightsId: string, maxPrice: bigint): void {
    if (!ctx.ws.get("weights", weightsId))
      throw txError("TX_UNKNOWN_TARGET", "these weights were never canonical");
    const key = `${signer}/${weightsId}`;
    if (ctx.ws.get("licenses", key)) throw txError("TX_DUPLICATE", "this account already holds a license");
    const price = this.meta(ctx).price;
    if (price > maxPrice) throw txError("TX_PRICE_ABOVE_MAX", `price ${price} is above ${maxPrice}`);
    this.debit(ctx, signer, price);
    this.burn(ctx, price);
    ctx.ws.set("licenses", key, { buyer: signer, weightsId, price, height: ctx.height });
  }

  private evidence(ctx: Ctx, a: EvidenceVote, b: EvidenceVote): void {
    const meta = this.meta(ctx);
    const pa = a.payload;
    const pb = b.payload;
    const conflicting =
      toHex(a.signer) === toHex(b.signer) &&
      pa.chainId === meta.chainId &&
      pb.chainId === meta.chainId &&
      pa.type === pb.type &&
      pa.height === pb.height &&
      pa.round === pb.round &&
      (pa.blockHash === null ? "" : toHex(pa.blockHash)) !==
        (pb.blockHash === null ? "" : toHex(pb.blockHash));
    if (!conflicting) throw txError("TX_INVALID_EVIDENCE", "the votes do not conflict");
    if (pa.height > ctx.height || ctx.height - pa.height > ctx.params.doubleSign.maxEvidenceAge) {
      throw txError("TX_INVALID_EVIDENCE", "evidence height out of range");
    }
    if (
      !verify(a.signature, signingBytes(pa), a.signer) ||
      !verify(b.signature, signingBytes(pb), b.signer)
    ) {
      throw txError("TX_INVALID_EVIDENCE", "a vote signature is invalid");
    }
    const address = toHex(a.signer);
    const v = ctx.ws.get("validators", address);
    if (!v) throw txError("TX_UNKNOWN_TARGET", "not a validator");
    if (v.tombstoned) throw txError("TX_DUPLICATE", "already tombstoned");
    this.slashValidator(ctx, address, v, ctx.params.doubleSign.slashBps, { tombstoned: true });
  }

  /** Burns a fraction of the bond and of the pending unbonding entries (an unbond cannot dodge it). */
  private slashValidator(
    ctx: Ctx,
    address: string,
    v: Validator,
    bps: number,
    patch: Partial<Validator>,
  ): void {
    const cut = mulBps(v.bonded, bps);
    let burned = cut;
    for (const key of ctx.ws.keys("unbonding")) {
      const u = ctx.ws.get("unbonding", key)!;
      if (u.owner !== address) continue;
      const c = mulBps(u.amount, bps);
      if (c === 0n) continue;
      ctx.ws.set("unbonding", key, { ...u, amount: u.amount - c });
      burned += c;
    }
    ctx.ws.set("validators", address, { ...v, ...patch, bonded: v.bonded - cut });
    this.burn(ctx, burned);
  }

  // ---- begin and end of block ----

  private beginBlock(ctx: Ctx, block: BlockInput): void {
    const meta = this.meta(ctx);
    const dt = ctx.params.downtime;
    if (block.lastCommitSigners !== null) {
      const signed = new Set(block.lastCommitSigners.map(toHex));
      const maxMissed = Math.floor((dt.window * (BPS - dt.minSignedBps)) / BPS);
      for (const { address } of meta.lastValidators) {
        if (signed.has(address)) continue;
        const v = ctx.ws.get("validators", address);
        if (!v || v.tombstoned || v.jailedUntil > ctx.height) continue;
        const missed = v.missed + 1;
        if (missed > maxMissed) {
          this.slashValidator(ctx, address, v, dt.slashBps, {
            missed: 0,
            jailedUntil: ctx.height + dt.jailBlocks,
          });
        } else {
          ctx.ws.set("validators", address, { ...v, missed });
        }
      }
    }
    if (ctx.height % dt.window === 0) {
      for (const key of ctx.ws.keys("validators")) {
        const v = ctx.ws.get("validators", key)!;
        if (v.missed !== 0) ctx.ws.set("validators", key, { ...v, missed: 0 });
      }
    }
    if (ctx.proposer !== undefined) this.mint(ctx, ctx.proposer, blockReward(ctx.params, ctx.height));
  }

  private endBlock(ctx: Ctx, block: BlockInput): void {
    this.closeSubmissions(ctx);
    const meta = this.meta(ctx);
    if (meta.activeRound >= 0) {
      const round = ctx.ws.get("rounds", pad(meta.activeRound))!;
      if (ctx.height >= round.verdictEnd) this.closeRound(ctx, round);
    }
    if (this.meta(ctx).activeRound < 0) this.maybeOpenRound(ctx, block.hash);
    this.matureUnbonding(ctx);
    const after = this.meta(ctx);
    const price = priceAt(ctx.params.price.basePrice, after.accumulatedValue, ctx.params.price.doublingValue);
    this.setMeta(ctx, {
      height: ctx.height,
      time: block.time,
      lastBlockHash: toHex(block.hash),
      price: maxBigInt(price, after.price),
      lastValidators: after.validators,
      validators: computeValidatorSet(ctx.ws, ctx.params, ctx.height + 1),
    });
  }

  private closeSubmissions(ctx: Ctx): void {
    for (const id of ctx.ws.keys("submissions")) {
      const sub = ctx.ws.get("submissions", id)!;
      if (sub.closesAt > ctx.height) continue;
      ctx.ws.delete("submissions", id);
      const voters = Object.keys(sub.votes).sort();
      const votes = voters.map((voter) => ({ weight: ctx.power.get(voter) ?? 0n, ...sub.votes[voter]! }));
      const agg = aggregateScores(votes, ctx.params.data);
      const quorum =
        ctx.totalPower > 0n &&
        agg.votedWeight * BigInt(BPS) >= BigInt(ctx.params.data.quorumBps) * ctx.totalPower;
      const record = ctx.ws.get("data", sub.contentHash)!;
      const closed = { ...record, value: agg.value, threshold: agg.threshold, closedAt: ctx.height };
      if (!quorum) {
        this.credit(ctx, sub.informant, sub.stake);
        ctx.ws.set("data", sub.contentHash, { ...closed, status: "expired" });
      } else if (agg.accepted) {
        const reward = (ctx.params.data.rewardAtFullValue * BigInt(agg.value)) / BigInt(BPS);
        this.credit(ctx, sub.informant, sub.stake);
        this.mint(ctx, sub.informant, reward);
        ctx.ws.set("data", sub.contentHash, { ...closed, status: "accepted", reward });
        const meta = this.meta(ctx);
        const entry: QueueEntry = {
          contentHash: sub.contentHash,
          size: sub.size,
          value: agg.value,
          segments: aggregateSegments(votes, sub.size),
        };
        ctx.ws.set("queue", pad(meta.nextQueueSeq), entry);
        this.setMeta(ctx, {
          nextQueueSeq: meta.nextQueueSeq + 1,
          accumulatedValue: meta.accumulatedValue + BigInt(agg.value),
        });
      } else {
        this.burn(ctx, sub.stake);
        ctx.ws.set("data", sub.contentHash, { ...closed, status: "rejected" });
      }
    }
  }

  private maybeOpenRound(ctx: Ctx, beacon: Uint8Array): void {
    const tp = ctx.params.training;
    if (ctx.ws.size("queue") < tp.batchSize) return;
    const batchKeys = ctx.ws.keys("queue").slice(0, tp.batchSize);
    const batch = batchKeys.map((k) => ctx.ws.get("queue", k)!);
    for (const k of batchKeys) ctx.ws.delete("queue", k);
    const meta = this.meta(ctx);
    const commitEnd = ctx.height + tp.commitWindow;
    const revealEnd = commitEnd + tp.revealWindow;
    const round: Round = {
      id: meta.nextRoundId,
      status: "open",
      baseWeightsId: meta.canonicalWeightsId,
      batchRoot: toHex(merkleRoot(batch.map((e) => fromHex(e.contentHash)))),
      batch,
      batchKeys,
      hyperParameters: tp.hyperParameters,
      seed: toHex(beacon),
      openedAt: ctx.height,
      commitEnd,
      revealEnd,
      verdictEnd: revealEnd + tp.verdictWindow,
      trainers: {},
      canonicalWeightsId: "",
    };
    ctx.ws.set("rounds", pad(round.id), round);
    this.setMeta(ctx, { activeRound: round.id, nextRoundId: round.id + 1 });
  }

  /**
   * Closes a round. A trainer that never revealed, or whose submission ≥ 2/3 of the active stake
   * rejected, loses its stake to the pot. The others are honest: they get their stake back and
   * split the pot (and, if the round succeeded, the round's mint) pro rata to stake, rounding
   * down; the pot's remainder is burned and the mint's remainder never minted. The new canonical
   * weights: among honest submissions accepted by > 2/3 of the stake, the one with the most
   * accepting stake, ties broken by the smaller weights id then trainer key. Without one the round
   * fails and its batch returns to the front of the queue.
   */
  private closeRound(ctx: Ctx, round: Round): void {
    const trainers = Object.keys(round.trainers).sort();
    const total = ctx.totalPower;
    let pot = 0n;
    const honest: { trainer: string; stake: bigint }[] = [];
    let best: { trainer: string; weightsId: string; accept: bigint } | undefined;
    for (const trainer of trainers) {
      const t = round.trainers[trainer]!;
      let accept = 0n;
      let reject = 0n;
      for (const [validator, ok] of Object.entries(t.verdicts)) {
        const w = ctx.power.get(validator) ?? 0n;
        if (ok) accept += w;
        else reject += w;
      }
      const rejected = total > 0n && reject * 3n >= total * 2n;
      if (t.weightsId === "" || rejected) {
        pot += t.stake;
        continue;
      }
      honest.push({ trainer, stake: t.stake });
      if (total > 0n && accept * 3n > total * 2n) {
        const better =
          !best ||
          accept > best.accept ||
          (accept === best.accept &&
            (t.weightsId < best.weightsId || (t.weightsId === best.weightsId && trainer < best.trainer)));
        if (better) best = { trainer, weightsId: t.weightsId, accept };
      }
    }
    let honestStake = 0n;
    for (const h of honest) honestStake += h.stake;
    let potPaid = 0n;
    for (const h of honest) {
      const share = (pot * h.stake) / honestStake;
      this.credit(ctx, h.trainer, h.stake + share);
      potPaid += share;
      if (best) this.mint(ctx, h.trainer, (ctx.params.training.roundMint * h.stake) / honestStake);
    }
    this.burn(ctx, pot - potPaid);
    if (best) {
      const meta = this.meta(ctx);
      if (!ctx.ws.get("weights", best.weightsId)) {
        ctx.ws.set("weights", best.weightsId, {
          index: meta.weightsCount,
          weightsId: best.weightsId,
          round: round.id,
          height: ctx.height,
        });
      }
      this.setMeta(ctx, {
        canonicalWeightsId: best.weightsId,
        weightsCount: meta.weightsCount + 1,
        accumulatedValue: meta.accumulatedValue + ctx.params.training.roundValue,
        activeRound: -1,
      });
      ctx.ws.set("rounds", pad(round.id), {
        ...round,
        status: "completed",
        canonicalWeightsId: best.weightsId,
      });
    } else {
      round.batchKeys.forEach((key, i) => {
        ctx.ws.set("queue", key, round.batch[i]!);
      });
      this.setMeta(ctx, { activeRound: -1 });
      ctx.ws.set("rounds", pad(round.id), { ...round, status: "failed" });
    }
  }

  private matureUnbonding(ctx: Ctx): void {
    const limit = pad(ctx.height + 1);
    for (const key of ctx.ws.keys("unbonding")) {
      if (key >= limit) break;
      const u = ctx.ws.get("unbonding", key)!;
      ctx.ws.delete("unbonding", key);
      this.credit(ctx, u.owner, u.amount);
    }
  }
}

type EvidenceVote = Extract<TxPayload, { type: "evidence" }>["voteA"];

function failure(err: unknown, charged: boolean): TxOutcome {
  if (err instanceof TxError) return { code: err.code, message: err.shortMessage, charged };
  throw err;
}

/** Top `maxValidators` by bonded stake (ties: smaller key), skipping jailed and tombstoned ones. */
export function computeValidatorSet(ws: WorkingState, params: Params, forHeight: number): ValidatorPower[] {
  const eligible: ValidatorPower[] = [];
  for (const address of ws.keys("validators")) {
    const v = ws.get("validators", address)!;
    if (v.tombstoned || v.jailedUntil > forHeight || v.bonded < params.minValidatorBond) continue;
    eligible.push({ address, power: v.bonded });
  }
  eligible.sort((a, b) => (a.power > b.power ? -1 : a.power < b.power ? 1 : a.address < b.address ? -1 : 1));
  return eligible.slice(0, params.maxValidators);
}
