/**
 * Tendermint consensus as a deterministic state machine: Algorithm 1 of "The latest gossip on BFT
 * consensus" (Buchman, Kwon, Milosevic; arXiv 1807.04938), with stake-weighted quorums.
 *
 * `handle(event)` returns the actions to perform; it never reads a clock, never does I/O and
 * never awaits, so the same engine runs under the deterministic simulator and a real transport.
 * The driver (ConsensusNode) performs the actions and feeds back the results as events: timeouts,
 * the value to propose, the application's verdict on a proposed value.
 *
 * The rules are evaluated to a fixpoint after every event; comments name the paper's line numbers.
 * One relaxation, as in CometBFT: a decision (line 49) needs the value of the decided id, from any
 * proposal of the height, not necessarily the proposal of the deciding round.
 *
 * Also as in CometBFT, a decided height's commit keeps growing: precommits for the decided block in
 * the deciding round that arrive after the decision (from slower validators) are still collected,
 * while the next height runs, so the next proposer carries every signature it has as `lastCommit`
 * and the state machine does not count a live but slower validator as absent.
 */
import { equalBytes, toHex } from "./encoding.ts";
import {
  type Commit,
  type CommitSignature,
  type ConsensusCrypto,
  type ConsensusMessage,
  type ConsensusSigner,
  commitPrecommit,
  type DuplicateVoteEvidence,
  type ProposalPayload,
  type SignedProposal,
  type SignedVote,
  type VotePayload,
  type VoteType,
} from "./types.ts";
import type { ValidatorSet } from "./validators.ts";

export type Step = "propose" | "prevote" | "precommit";
export type TimeoutKind = Step;

export interface TimeoutConfig {
  /** Duration of the round-0 timeout and its growth per round, in milliseconds (linear back-off). */
  propose: { base: number; perRound: number };
  prevote: { base: number; perRound: number };
  precommit: { base: number; perRound: number };
}

export const DEFAULT_TIMEOUTS: TimeoutConfig = {
  propose: { base: 3000, perRound: 500 },
  prevote: { base: 1000, perRound: 500 },
  precommit: { base: 1000, perRound: 500 },
};

export type EngineEvent<V> =
  /** Start deciding `height` with its validator set (after the previous block was committed). */
  | { type: "start"; height: number; validators: ValidatorSet }
  | { type: "message"; message: ConsensusMessage<V> }
  | { type: "timeout"; kind: TimeoutKind; height: number; round: number }
  /** The value this node proposes, answering a `requestValue` action. */
  | { type: "value"; height: number; round: number; value: V }
  /** The application's verdict on a proposed value, answering a `validateValue` action. */
  | { type: "validated"; height: number; valueHash: Uint8Array; valid: boolean };

export type EngineAction<V> =
  | { type: "broadcast"; message: ConsensusMessage<V> }
  | { type: "scheduleTimeout"; kind: TimeoutKind; height: number; round: number; delayMs: number }
  | { type: "requestValue"; height: number; round: number }
  | { type: "validateValue"; height: number; round: number; value: V; valueHash: Uint8Array }
  | { type: "decide"; height: number; round: number; value: V; commit: Commit }
  | { type: "evidence"; evidence: DuplicateVoteEvidence };

export interface EngineOptions<V> {
  chainId: string;
  crypto: ConsensusCrypto;
  /** The id of a value (the block hash). */
  valueHash: (value: V) => Uint8Array;
  /** This node's validator key; absent on a node that only follows. */
  signer?: ConsensusSigner | undefined;
  timeouts?: TimeoutConfig | undefined;
  /** Messages for rounds further ahead than this are dropped (bounds memory against spam). */
  maxRoundsAhead?: number | undefined;
  /** Messages for the next height kept until it starts. */
  maxBufferedMessages?: number | undefined;
}

const NIL = "nil";

/**
 * A Byzantine validator may sign several values in one round and type. As in the paper, where
 * "2f+1 ⟨PREVOTE, h, r, id(v)⟩" counts messages, each signed vote counts toward its own value (a
 * validator at most once per value), and once toward the round's total; safety still holds while
 * faulty power is below 1/3, and honest nodes never miss a polka because they first saw a twin.
 * Values beyond this many per validator are ignored, which bounds memory.
 */
const MAX_VALUES_PER_VALIDATOR = 4;

class VoteSet {
  /** Validator → value key → vote. */
  readonly votes = new Map<string, Map<string, SignedVote>>();
  readonly weights = new Map<string, bigint>();
  total = 0n;

  weight(key: string): bigint {
    return this.weights.get(key) ?? 0n;
  }

  add(address: string, key: string, vote: SignedVote, power: bigint): void {
    let mine = this.votes.get(address);
    if (!mine) {
      mine = new Map();
      this.votes.set(address, mine);
      this.total += power;
    }
    mine.set(key, vote);
    this.weights.set(key, this.weight(key) + power);
  }

  votesFor(key: string): SignedVote[] {
    const out: SignedVote[] = [];
    for (const mine of this.votes.values()) {
      const vote = mine.get(key);
      if (vote) out.push(vote);
    }
    return out;
  }
}

function voteKey(blockHash: Uint8Array | null): string {
  return blockHash === null ? NIL : toHex(blockHash);
}

interface RoundState {
  proposal?: { payload: ProposalPayload; id: string };
  readonly prevotes: VoteSet;
  readonly precommits: VoteSet;
  /** Validators heard from in this round, by any message (line 55). */
  readonly senders: Map<string, bigint>;
  sendersPower: bigint;
  prevoteTimeoutScheduled: boolean;
  precommitTimeoutScheduled: boolean;
  /** Line 36 fires once per round. */
  polApplied: boolean;
}

/** The last decided height's commit, still collecting late precommits for the decided block. */
interface DecidedCommit<V> {
  readonly height: number;
  readonly round: number;
  readonly blockHash: Uint8Array;
  readonly validators: ValidatorSet;
  /** What every signature of the commit signs. */
  readonly bytes: Uint8Array;
  /** Validator address → its precommit signature. */
  readonly signatures: Map<string, CommitSignature>;
  /** This node's own precommit in the commit, gossiped while the next height runs. */
  readonly own: ConsensusMessage<V> | undefined;
}

export class TendermintEngine<V> {
  private readonly chainId: string;
  private readonly crypto: ConsensusCrypto;
  private readonly valueHash: (value: V) => Uint8Array;
  private readonly signer: ConsensusSigner | undefined;
  private readonly address: string | undefined;
  private readonly timeouts: TimeoutConfig;
  private readonly maxRoundsAhead: number;
  private readonly maxBuffered: number;

  private validators: ValidatorSet | undefined;
  private started = false;
  private decided = false;
  private _height = 0;
  private _round = 0;
  private _step: Step = "propose";
  private lockedValue: string | null = null;
  private lockedRound = -1;
  private validValue: string | null = null;
  private validRound = -1;
  private rounds = new Map<number, RoundState>();
  private values = new Map<string, { value: V; hash: Uint8Array }>();
  private validity = new Map<string, boolean>();
  private validationRequested = new Set<string>();
  private proposedRounds = new Set<number>();
  private evidenceSeen = new Set<string>();
  private own: ConsensusMessage<V>[] = [];
  private decidedCommit: DecidedCommit<V> | undefined;
  private buffered: ConsensusMessage<V>[] = [];
  private out: EngineAction<V>[] = [];

  constructor(options: EngineOptions<V>) {
    this.chainId = options.chainId;
    this.crypto = options.crypto;
    this.valueHash = options.valueHash;
    this.signer = options.signer;
    this.address = options.signer ? toHex(options.signer.publicKey) : undefined;
    this.timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
    this.maxRoundsAhead = options.maxRoundsAhead ?? 1000;
    this.maxBuffered = options.maxBufferedMessages ?? 4096;
  }

  get height(): number {
    return this._height;
  }

  get round(): number {
    return this._round;
  }

  get step(): Step {
    return this._step;
  }

  /** True once the current height is decided and before the next one starts. */
  get hasDecided(): boolean {
    return this.decided;
  }

  /**
   * The commit of `height` if it is the last height this engine decided: every valid precommit for
   * the decided block in the deciding round received so far (also after the decision), sorted by
   * validator key. Undefined for any other height.
   */
  commitFor(height: number): Commit | undefined {
    const dc = this.decidedCommit;
    if (!dc || dc.height !== height) return undefined;
    const signatures = [...dc.signatures.values()].sort((a, b) => Buffer.compare(a.validator, b.validator));
    return { v: 1, height: dc.height, round: dc.round, blockHash: dc.blockHash, signatures };
  }

  /** The lock of the current height (line 38), for tests and metrics. */
  get lock(): { round: number; valueHash: string | null } {
    return { round: this.lockedRound, valueHash: this.lockedValue };
  }

  /**
   * What this node re-broadcasts periodically (the paper assumes gossip eventually delivers every
   * message a correct process received): every message it signed at the current height, and the
   * prevotes that justify its valid value, so that peers can accept its re-proposal (line 28).
   */
  gossip(): ConsensusMessage<V>[] {
    const out = [...this.own];
    const dc = this.decidedCommit;
    if (dc?.own && dc.height < this._height) out.push(dc.own);
    if (this.validRound >= 0 && this.validValue !== null) {
      const pol = this.rounds.get(this.validRound)?.prevotes.votesFor(this.validValue) ?? [];
      for (const vote of pol) if (toHex(vote.signer) !== this.address) out.push({ v: 1, type: "vote", vote });
    }
    return out;
  }

  handle(event: EngineEvent<V>): EngineAction<V>[] {
    this.out = [];
    switch (event.type) {
      case "start":
        this.startHeight(event.height, event.validators);
        break;
      case "message":
        this.receive(event.message);
        break;
      case "timeout":
        this.onTimeout(event.kind, event.height, event.round);
        break;
      case "value":
        this.onValue(event.height, event.round, event.value);
        break;
      case "validated":
        if (event.height === this._height && this.started)
          this.validity.set(toHex(event.valueHash), event.valid);
        break;
    }
    this.evaluate();
    const out = this.out;
    this.out = [];
    return out;
  }

  private startHeight(height: number, validators: ValidatorSet): void {
    this._height = height;
    this.validators = validators;
    this.started = true;
    this.decided = false;
    this.lockedValue = null;
    this.lockedRound = -1;
    this.validValue = null;
    this.validRound = -1;
    this.rounds = new Map();
    this.values = new Map();
    this.validity = new Map();
    this.validationRequested = new Set();
    this.proposedRounds = new Set();
    this.evidenceSeen = new Set();
    this.own = [];
    const buffered = this.buffered;
    this.buffered = [];
    this.startRound(0);
    for (const message of buffered) if (messageHeight(message) === height) this.receive(message);
  }

  /** StartRound (line 11). */
  private startRound(round: number): void {
    const validators = this.validators!;
    this._round = round;
    this._step = "propose";
    if (this.address !== undefined && validators.proposer(round).address === this.address) {
      const valid = this.validValue === null ? undefined : this.values.get(this.validValue);
      if (valid) this.propose(valid.value, valid.hash, this.validRound);
      else this.out.push({ type: "requestValue", height: this._height, round });
    }
    // Scheduled for the proposer too, so a slow application cannot stall the round.
    this.schedule("propose", round);
  }

  private onValue(height: number, round: number, value: V): void {
    if (!this.started || this.decided || height !== this._height || round !== this._round) return;
    if (this._step !== "propose" || this.proposedRounds.has(round)) return;
    this.propose(value, this.valueHash(value), -1);
  }

  private propose(value: V, hash: Uint8Array, polRound: number): void {
    const signer = this.signer!;
    this.proposedRounds.add(this._round);
    const payload: ProposalPayload = {
      v: 1,
      type: "proposal",
      chainId: this.chainId,
      height: this._height,
      round: this._round,
      polRound,
      blockHash: hash,
    };
    const proposal: SignedProposal = {
      payload,
      signer: signer.publicKey,
      signature: signer.sign(this.crypto.signingBytes(payload)),
    };
    const message: ConsensusMessage<V> = { v: 1, type: "proposal", proposal, block: value };
    const id = toHex(hash);
    // The proposer built (or already validated) the value itself.
    this.validity.set(id, true);
    this.acceptProposal(payload, id, value, hash, this.address!);
    this.own.push(message);
    this.out.push({ type: "broadcast", message });
  }

  private vote(type: VoteType, id: string | null, round = this._round): void {
    if (!this.signer || this.validators!.powerOf(this.address!) === 0n) return;
    const value = id === null ? undefined : this.values.get(id);
    const payload: VotePayload = {
      v: 1,
      type,
      chainId: this.chainId,
      height: this._height,
      round,
      blockHash: value ? value.hash : null,
    };
    const vote: SignedVote = {
      payload,
      signer: this.signer.publicKey,
      signature: this.signer.sign(this.crypto.signingBytes(payload)),
    };
    this.acceptVote(vote, this.address!);
    const message: ConsensusMessage<V> = { v: 1, type: "vote", vote };
    this.own.push(message);
    this.out.push({ type: "broadcast", message });
  }

  private schedule(kind: TimeoutKind, round: number): void {
    const t = this.timeouts[kind];
    this.out.push({
      type: "scheduleTimeout",
      kind,
      height: this._height,
      round,
      delayMs: t.base + t.perRound * round,
    });
  }

  private roundState(round: number): RoundState {
    let rs = this.rounds.get(round);
    if (!rs) {
      rs = {
        prevotes: new VoteSet(),
        precommits: new VoteSet(),
        senders: new Map(),
        sendersPower: 0n,
        prevoteTimeoutScheduled: false,
        precommitTimeoutScheduled: false,
        polApplied: false,
      };
      this.rounds.set(round, rs);
    }
    return rs;
  }

  private noteSender(rs: RoundState, address: string, power: bigint): void {
    if (rs.senders.has(address)) return;
    rs.senders.set(address, power);
    rs.sendersPower += power;
  }

  private receive(message: ConsensusMessage<V>): void {
    const height = messageHeight(message);
    if (!Number.isSafeInteger(height)) return;
    if (message.type === "vote" && height === this.decidedCommit?.height) {
      this.addLatePrecommit(message.vote, this.decidedCommit);
      return;
    }
    if (!this.started) {
      // Kept until the first height starts; `startHeight` drops those of other heights.
      if (this.buffered.length < this.maxBuffered) this.buffered.push(message);
      return;
    }
    if (height > this._height || (height === this._height && this.decided)) {
      if (height === this._height + 1 && this.buffered.length < this.maxBuffered) this.buffered.push(message);
      return;
    }
    if (height < this._height) return;
    const round = message.type === "vote" ? message.vote.payload.round : message.proposal.payload.round;
    if (!Number.isSafeInteger(round) || round < 0 || round > this._round + this.maxRoundsAhead) return;
    if (message.type === "vote") this.receiveVote(message.vote);
    else this.receiveProposal(message.proposal, message.block);
  }

  private receiveProposal(proposal: SignedProposal, value: V): void {
    const { payload } = proposal;
    if (payload.type !== "proposal" || payload.chainId !== this.chainId) return;
    const rs = this.roundState(payload.round);
    if (rs.proposal) return;
    const proposer = this.validators!.proposer(payload.round);
    if (!equalBytes(proposal.signer, proposer.publicKey)) return;
    if (!Number.isSafeInteger(payload.polRound) || payload.polRound < -1 || payload.polRound >= payload.round)
      return;
    let hash: Uint8Array;
    try {
      hash = this.valueHash(value);
    } catch {
      // A value that cannot even be hashed (malformed) is no proposal.
      return;
    }
    if (!equalBytes(hash, payload.blockHash)) return;
    if (!this.verified(proposal.signature, payload, proposal.signer)) return;
    this.acceptProposal(payload, toHex(hash), value, hash, proposer.address);
  }

  private acceptProposal(
    payload: ProposalPayload,
    id: string,
    value: V,
    hash: Uint8Array,
    from: string,
  ): void {
    const rs = this.roundState(payload.round);
    rs.proposal = { payload, id };
    if (!this.values.has(id)) this.values.set(id, { value, hash });
    this.noteSender(rs, from, this.validators!.powerOf(from));
    this.requestValidation(id, payload.round);
  }

  private requestValidation(id: string, round: number): void {
    if (this.validity.has(id) || this.validationRequested.has(id)) return;
    const entry = this.values.get(id);
    if (!entry) return;
    this.validationRequested.add(id);
    this.out.push({
      type: "validateValue",
      height: this._height,
      round,
      value: entry.value,
      valueHash: entry.hash,
    });
  }

  private receiveVote(vote: SignedVote): void {
    const { payload } = vote;
    if ((payload.type !== "prevote" && payload.type !== "precommit") || payload.chainId !== this.chainId)
      return;
    if (payload.blockHash !== null && !(payload.blockHash instanceof Uint8Array)) return;
    const address = toHex(vote.signer);
    if (this.validators!.powerOf(address) === 0n) return;
    const rs = this.roundState(payload.round);
    const set = payload.type === "prevote" ? rs.prevotes : rs.precommits;
    const key = voteKey(payload.blockHash);
    const mine = set.votes.get(address);
    if (mine?.has(key) || (mine && mine.size >= MAX_VALUES_PER_VALIDATOR)) return;
    if (!this.verified(vote.signature, payload, vote.signer)) return;
    if (mine) this.reportDuplicate(mine.values().next().value!, vote, address);
    this.acceptVote(vote, address);
  }

  /** Adds a precommit for the decided block in the deciding round to its commit; ignores anything else. */
  private addLatePrecommit(vote: SignedVote, dc: DecidedCommit<V>): void {
    const { payload } = vote;
    if (payload.type !== "precommit" || payload.chainId !== this.chainId || payload.round !== dc.round)
      return;
    if (!(payload.blockHash instanceof Uint8Array) || !equalBytes(payload.blockHash, dc.blockHash)) return;
    if (!(vote.signer instanceof Uint8Array) || !(vote.signature instanceof Uint8Array)) return;
    const address = toHex(vote.signer);
    if (dc.signatures.has(address) || dc.validators.powerOf(address) === 0n) return;
    let ok = false;
    try {
      ok = this.crypto.verify(vote.signature, dc.bytes, vote.signer);
    } catch {
      // A malformed signature or key is no signature.
    }
    if (ok) dc.signatures.set(address, { validator: vote.signer, signature: vote.signature });
  }

  /** A payload the codec refuses is as bad as a wrong signature. */
  private verified(
    signature: Uint8Array,
    payload: VotePayload | ProposalPayload,
    signer: Uint8Array,
  ): boolean {
    try {
      return this.crypto.verify(signature, this.crypto.signingBytes(payload), signer);
    } catch {
      return false;
    }
  }

  private acceptVote(vote: SignedVote, address: string): void {
    const power = this.validators!.powerOf(address);
    const rs = this.roundState(vote.payload.round);
    const set = vote.payload.type === "prevote" ? rs.prevotes : rs.precommits;
    set.add(address, voteKey(vote.payload.blockHash), vote, power);
    this.noteSender(rs, address, power);
  }

  private reportDuplicate(a: SignedVote, b: SignedVote, address: string): void {
    const key = `${address}/${a.payload.round}/${a.payload.type}`;
    if (this.evidenceSeen.has(key)) return;
    this.evidenceSeen.add(key);
    this.out.push({ type: "evidence", evidence: orderedEvidence(a, b) });
  }

  private onTimeout(kind: TimeoutKind, height: number, round: number): void {
    if (!this.started || this.decided || height !== this._height || round !== this._round) return;
    if (kind === "propose" && this._step === "propose") {
      // Line 57.
      this.vote("prevote", null);
      this._step = "prevote";
    } else if (kind === "prevote" && this._step === "prevote") {
      // Line 61.
      this.vote("precommit", null);
      this._step = "precommit";
    } else if (kind === "precommit") {
      // Line 65.
      this.startRound(round + 1);
    }
  }

  private evaluate(): void {
    // Each rule changes the state so it cannot fire again; the bound guards against a bug looping.
    for (let i = 0; i < 10_000 && this.started && !this.decided; i++) {
      if (!this.applyRule()) return;
    }
  }

  private applyRule(): boolean {
    const validators = this.validators!;
    // Line 49: 2f+1 precommits for a value of any round decide it.
    for (const [round, rs] of this.rounds) {
      for (const [id, weight] of rs.precommits.weights) {
        if (id === NIL || !validators.hasQuorum(weight)) continue;
        const entry = this.values.get(id);
        if (!entry) continue;
        const valid = this.validity.get(id);
        if (valid === undefined) this.requestValidation(id, round);
        if (valid !== true) continue;
        this.decide(round, id, entry.value);
        return true;
      }
    }
    // Line 55: f+1 of the power is already in a higher round: skip to it.
    let skipTo = -1;
    for (const [round, rs] of this.rounds) {
      if (round > this._round && round > skipTo && validators.hasOneThird(rs.sendersPower)) skipTo = round;
    }
    if (skipTo >= 0) {
      this.startRound(skipTo);
      return true;
    }
    const rs = this.roundState(this._round);
    const proposal = rs.proposal;
    if (this._step === "propose" && proposal) {
      const { polRound } = proposal.payload;
      const valid = this.validity.get(proposal.id);
      if (valid !== undefined && polRound === -1) {
        // Line 22.
        const ok = valid && (this.lockedRound === -1 || this.lockedValue === proposal.id);
        this.vote("prevote", ok ? proposal.id : null);
        this._step = "prevote";
        return true;
      }
      const pol = polRound >= 0 && polRound < this._round ? this.rounds.get(polRound) : undefined;
      if (valid !== undefined && pol && validators.hasQuorum(pol.prevotes.weight(proposal.id))) {
        // Line 28.
        const ok = valid && (this.lockedRound <= polRound || this.lockedValue === proposal.id);
        this.vote("prevote", ok ? proposal.id : null);
        this._step = "prevote";
        return true;
      }
    }
    if (this._step === "prevote" && !rs.prevoteTimeoutScheduled && validators.hasQuorum(rs.prevotes.total)) {
      // Line 34.
      rs.prevoteTimeoutScheduled = true;
      this.schedule("prevote", this._round);
      return true;
    }
    if (
      this._step !== "propose" &&
      !rs.polApplied &&
      proposal &&
      this.validity.get(proposal.id) === true &&
      validators.hasQuorum(rs.prevotes.weight(proposal.id))
    ) {
      // Line 36.
      rs.polApplied = true;
      if (this._step === "prevote") {
        this.lockedValue = proposal.id;
        this.lockedRound = this._round;
        this.vote("precommit", proposal.id);
        this._step = "precommit";
      }
      this.validValue = proposal.id;
      this.validRound = this._round;
      return true;
    }
    if (this._step === "prevote" && validators.hasQuorum(rs.prevotes.weight(NIL))) {
      // Line 44.
      this.vote("precommit", null);
      this._step = "precommit";
      return true;
    }
    if (!rs.precommitTimeoutScheduled && validators.hasQuorum(rs.precommits.total)) {
      // Line 47.
      rs.precommitTimeoutScheduled = true;
      this.schedule("precommit", this._round);
      return true;
    }
    return false;
  }

  private decide(round: number, id: string, value: V): void {
    const entry = this.values.get(id)!;
    const rs = this.rounds.get(round)!;
    // A validator that saw the others' precommits before its own (it validated the block last)
    // still signs, as CometBFT's enterPrecommit does on a polka: it never precommitted in this
    // round, so this cannot conflict with anything it signed, and its signature joins the commit.
    if (
      this.address !== undefined &&
      !rs.precommits.votes.has(this.address) &&
      this.validators!.hasQuorum(rs.prevotes.weight(id))
    ) {
      this.vote("precommit", id, round);
    }
    const votes = rs.precommits.votesFor(id);
    const signatures = new Map<string, CommitSignature>();
    for (const vote of votes)
      signatures.set(toHex(vote.signer), { validator: vote.signer, signature: vote.signature });
    // The very message object the node sent (or its sign log refused, which must stay unsent).
    const own = this.own.find((m) => m.type === "vote" && votes.includes(m.vote));
    const header = { height: this._height, round, blockHash: entry.hash };
    this.decidedCommit = {
      ...header,
      validators: this.validators!,
      bytes: this.crypto.signingBytes(commitPrecommit(this.chainId, header)),
      signatures,
      own,
    };
    this.decided = true;
    this.out.push({
      type: "decide",
      height: this._height,
      round,
      value,
      commit: this.commitFor(this._height)!,
    });
  }
}

function messageHeight<V>(message: ConsensusMessage<V>): number {
  return message.type === "vote" ? message.vote.payload.height : message.proposal.payload.height;
}

/** Orders the two votes (nil first, then by block hash) so every node forms the same evidence. */
export function orderedEvidence(a: SignedVote, b: SignedVote): DuplicateVoteEvidence {
  const ha = a.payload.blockHash;
  const hb = b.payload.blockHash;
  const aFirst = ha === null || (hb !== null && Buffer.compare(ha, hb) < 0);
  return aFirst ? { voteA: a, voteB: b } : { voteA: b, voteB: a };
}
