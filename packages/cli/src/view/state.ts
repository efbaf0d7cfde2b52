/**
 * The live view's model of the network: a pure reducer from what the nodes tell (events from
 * `/events`, committed blocks' transactions, polled snapshots of the API) to one state the ink
 * components render. No I/O here, so every rule is testable without a terminal.
 */
import { encodeAddress } from "@deepshard/protocol";
import type { AccountInfo, BlockTx, NodeStatus, SupplyInfo, ValidatorSetInfo } from "../node/client.ts";
import type { NodeEvent } from "../node/events.ts";

/** A node the view watches. */
export interface ViewNode {
  name: string;
  api: string;
  roles: readonly string[];
  /** `ds1…` */
  address: string;
}

export interface VoteRow {
  /** `ds1…` of the validator. */
  voter: string;
  height: number;
  /** Weighted score in basis points, when the voting node told it (`validator.vote`). */
  combined?: number;
  verdict?: string;
}

export type SubmissionStatus = "open" | "accepted" | "rejected" | "expired" | "failed" | "closed";

export interface SubmissionRow {
  /** The data.submit transaction's hash. */
  id: string;
  informant: string;
  height: number;
  size?: number;
  stake?: bigint;
  closesAt?: number;
  votes: VoteRow[];
  status: SubmissionStatus;
  value?: number;
  threshold?: number;
  reward?: bigint;
}

export interface TrainerRow {
  /** `ds1…` */
  trainer: string;
  committed: boolean;
  /** What it trained (heard from the trainer itself), before it reveals. */
  trained?: string;
  /** What it revealed on the ledger. */
  weightsId?: string;
  outcome?: string;
  canonical?: boolean;
}

export interface VerdictRow {
  validator: string;
  accepts: number;
  rejects: number;
  reasons: string[];
}

export interface RoundRow {
  id: number;
  phase?: string;
  commitEnd?: number;
  revealEnd?: number;
  verdictEnd?: number;
  trainers: TrainerRow[];
  verdicts: VerdictRow[];
}

export interface AccountRow {
  address: string;
  balance: bigint;
  bonded: bigint;
  unbonding: bigint;
}

export interface ReplicationView {
  weightsId: string;
  chunkCount: number | null;
  holders: { address: string; chunks: number; roles: readonly string[] }[];
  replication: {
    target: number;
    min: number;
    underReplicated: number;
    missing: number;
    placed: number;
    storageSet: string[];
  } | null;
}

export interface ViewState {
  title: string;
  nodes: ViewNode[];
  chainId?: string;
  /** Highest committed height seen; with BFT consensus a committed block is final. */
  height: number;
  blockTime?: number;
  appHash?: string;
  /** The height and round consensus is working on now. */
  consensus?: { height: number; round: number; step: string };
  peers?: number;
  mempool?: number;
  validators: { address: string; power: bigint }[];
  totalPower: bigint;
  submissions: SubmissionRow[];
  rounds: RoundRow[];
  accounts: AccountRow[];
  price?: bigint;
  canonicalWeightsId?: string;
  accumulatedValue?: bigint;
  /** Canonical weights so far, the genesis weights included. */
  weightsVersions?: number;
  replication?: ReplicationView;
  supply?: { holds: boolean; actual: bigint };
  /** Recent notable happenings, newest last. */
  log: string[];
  /** The last polling error of each node, cleared by its next answer. */
  errors: Record<string, string>;
}

export interface WeightsOverview {
  height: number;
  canonicalWeightsId: string;
  price: bigint | string;
  accumulatedValue: bigint | string;
  history: unknown[];
}

/** `GET /trainer/status`'s active round. */
export interface ActiveRound {
  id: number;
  phase: string;
  commitEnd: number;
  revealEnd: number;
  verdictEnd: number;
}

/** `GET /validator/data`'s open submissions. */
export interface OpenSubmission {
  submission: string;
  informant: string;
  size: number;
  closesAt?: number;
}

export type ViewAction =
  | { type: "nodes"; nodes: ViewNode[] }
  | { type: "event"; node: string; event: NodeEvent }
  | { type: "block"; height: number; txs: BlockTx[] }
  | { type: "status"; node: string; status: NodeStatus }
  | { type: "validators"; set: ValidatorSetInfo }
  | { type: "account"; account: AccountInfo }
  | { type: "supply"; supply: SupplyInfo }
  | { type: "weights"; overview: WeightsOverview }
  | { type: "replication"; view: ReplicationView }
  | { type: "round"; round: ActiveRound }
  | { type: "open-submissions"; open: OpenSubmission[] }
  | { type: "error"; node: string; message: string }
  | { type: "log"; line: string };

export const MAX_LOG = 200;
/** Closed submissions and settled rounds kept on screen. */
export const MAX_SUBMISSIONS = 50;
export const MAX_ROUNDS = 20;

export function initialState(title: string, nodes: ViewNode[] = []): ViewState {
  return {
    title,
    nodes,
    height: 0,
    validators: [],
    totalPower: 0n,
    submissions: [],
    rounds: [],
    accounts: nodes.map((n) => ({ address: n.address, balance: 0n, bonded: 0n, unbonding: 0n })),
    log: [],
    errors: {},
  };
}

/** A `ds1…` address from either form an API or event uses (address or 64 hex digits of the key). */
export function toAddress(account: string): string {
  return /^[0-9a-f]{64}$/i.test(account) ? encodeAddress(Buffer.from(account, "hex")) : account;
}

/** The name a person reads for an account: the node's name when it is one of the view's nodes. */
export function accountName(state: ViewState, address: string): string {
  const node = state.nodes.find((n) => n.address === address);
  return node ? node.name : `${address.slice(0, 8)}…${address.slice(-3)}`;
}

function amount(value: unknown): bigint | undefined {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  return typeof value === "string" && /^[0-9]{1,40}$/.test(value) ? BigInt(value) : undefined;
}

function pushLog(state: ViewState, line: string): ViewState {
  const log = state.log.length >= MAX_LOG ? state.log.slice(1 - MAX_LOG) : state.log.slice();
  log.push(line);
  return { ...state, log };
}

function upsertSubmission(
  state: ViewState,
  id: string,
  create: () => SubmissionRow,
  update: (row: SubmissionRow) => SubmissionRow,
): ViewState {
  const i = state.submissions.findIndex((s) => s.id === id);
  let submissions: SubmissionRow[];
  if (i >= 0) {
    submissions = state.submissions.slice();
    submissions[i] = update(submissions[i]!);
  } else {
    submissions = [...state.submissions, update(create())];
    // Closed ones go first when there are too many; open ones stay.
    while (submissions.length > MAX_SUBMISSIONS) {
      const closed = submissions.findIndex((s) => s.status !== "open");
      submissions.splice(Math.max(closed, 0), 1);
    }
  }
  return { ...state, submissions };
}

function upsertRound(state: ViewState, id: number, update: (row: RoundRow) => RoundRow): ViewState {
  const i = state.rounds.findIndex((r) => r.id === id);
  let rounds: RoundRow[];
  if (i >= 0) {
    rounds = state.rounds.slice();
    rounds[i] = update(rounds[i]!);
  } else {
    rounds = [...state.rounds, update({ id, trainers: [], verdicts: [] })].sort((a, b) => a.id - b.id);
    if (rounds.length > MAX_ROUNDS) rounds = rounds.slice(-MAX_ROUNDS);
  }
  return { ...state, rounds };
}

function upsertTrainer(round: RoundRow, trainer: string, update: Partial<TrainerRow>): RoundRow {
  const i = round.trainers.findIndex((t) => t.trainer === trainer);
  const trainers = round.trainers.slice();
  if (i >= 0) trainers[i] = { ...trainers[i]!, ...update };
  else trainers.push({ trainer, committed: false, ...update });
  return { ...round, trainers };
}

function addVote(row: SubmissionRow, vote: VoteRow): SubmissionRow {
  const i = row.votes.findIndex((v) => v.voter === vote.voter);
  const votes = row.votes.slice();
  if (i >= 0) votes[i] = { ...votes[i]!, ...vote, height: Math.min(votes[i]!.height, vote.height) };
  else votes.push(vote);
  return { ...row, votes };
}

function newSubmission(id: string, height: number, informant = ""): () => SubmissionRow {
  return () => ({ id, informant, height, votes: [], status: "open" });
}

function nodeAddress(state: ViewState, node: string): string | undefined {
  return state.nodes.find((n) => n.name === node)?.address;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** Submissions whose window passed without an outcome we heard of (no informant node in view). */
function closeExpired(state: ViewState): ViewState {
  if (
    !state.submissions.some(
      (s) => s.status === "open" && s.closesAt !== undefined && state.height > s.closesAt,
    )
  )
    return state;
  return {
    ...state,
    submissions: state.submissions.map((s) =>
      s.status === "open" && s.closesAt !== undefined && state.height > s.closesAt
        ? { ...s, status: "closed" }
        : s,
    ),
  };
}

function withHeight(state: ViewState, height: number): ViewState {
  return height > state.height ? closeExpired({ ...state, height }) : state;
}

/** A committed transaction that succeeded, applied to the view. */
function applyTx(state: ViewState, height: number, tx: BlockTx): ViewState {
  const sender = toAddress(tx.sender);
  switch (tx.type) {
    case "data.submit":
      return upsertSubmission(state, tx.hash, newSubmission(tx.hash, height, sender), (row) => {
        const size = num(tx.size);
        const stake = amount(tx.stake);
        return {
          ...row,
          informant: sender,
          height,
          ...(size === undefined ? {} : { size }),
          ...(stake === undefined ? {} : { stake }),
        };
      });
    case "data.vote": {
      const id = str(tx.submission);
      if (id === undefined) return state;
      return upsertSubmission(state, id, newSubmission(id, height), (row) =>
        addVote(row, { voter: sender, height }),
      );
    }
    case "training.commit": {
      const round = num(tx.round);
      if (round === undefined) return state;
      return upsertRound(state, round, (r) => upsertTrainer(r, sender, { committed: true }));
    }
    case "training.reveal": {
      const round = num(tx.round);
      const weightsId = str(tx.weightsId);
      if (round === undefined) return state;
      return upsertRound(state, round, (r) =>
        upsertTrainer(r, sender, { committed: true, ...(weightsId === undefined ? {} : { weightsId }) }),
      );
    }
    case "training.verdict": {
      const round = num(tx.round);
      if (round === undefined || !Array.isArray(tx.verdicts)) return state;
      return upsertRound(state, round, (r) => withVerdicts(r, sender, tx.verdicts as unknown[]));
    }
    default:
      return state;
  }
}

function withVerdicts(round: RoundRow, validator: string, verdicts: unknown[]): RoundRow {
  let accepts = 0;
  let rejects = 0;
  const reasons = new Set<string>();
  for (const v of verdicts) {
    const verdict = v as { accept?: unknown; reasons?: unknown };
    if (verdict.accept === true) accepts++;
    else rejects++;
    if (Array.isArray(verdict.reasons))
      for (const r of verdict.reasons) if (typeof r === "string") reasons.add(r);
  }
  const row = { validator, accepts, rejects, reasons: [...reasons] };
  const i = round.verdicts.findIndex((x) => x.validator === validator);
  const list = round.verdicts.slice();
  if (i >= 0) list[i] = row;
  else list.push(row);
  return { ...round, verdicts: list };
}

function applyEvent(state: ViewState, node: string, event: NodeEvent): ViewState {
  const e = event as Record<string, unknown>;
  switch (event.type) {
    case "block": {
      const next = withHeight(state, event.height);
      return event.height >= state.height ? { ...next, blockTime: event.time, appHash: event.appHash } : next;
    }
    case "tx":
      return withHeight(state, event.height);
    case "validator.vote": {
      const id = str(e.submission);
      const voter = nodeAddress(state, node);
      if (id === undefined || voter === undefined) return state;
      const vote: VoteRow = { voter, height: num(e.height) ?? state.height };
      const combined = num(e.combined);
      const verdict = str(e.verdict);
      if (combined !== undefined) vote.combined = combined;
      if (verdict !== undefined) vote.verdict = verdict;
      const informant = str(e.informant);
      return upsertSubmission(
        state,
        id,
        newSubmission(id, vote.height, informant && toAddress(informant)),
        (row) => addVote(row, vote),
      );
    }
    case "informant.outcome": {
      const id = str(e.submission);
      const status = str(e.status);
      if (id === undefined || status === undefined) return state;
      const informant = nodeAddress(state, node) ?? "";
      const next = upsertSubmission(state, id, newSubmission(id, state.height, informant), (row) => {
        const out: SubmissionRow = { ...row, status: status as SubmissionStatus };
        const value = num(e.value);
        const threshold = num(e.threshold);
        const reward = amount(e.reward);
        if (value !== undefined) out.value = value;
        if (threshold !== undefined) out.threshold = threshold;
        if (reward !== undefined) out.reward = reward;
        return out;
      });
      return pushLog(next, `${node} submission ${id.slice(0, 8)} ${status}`);
    }
    case "informant.failed": {
      const id = str(e.submission);
      if (id === undefined) return state;
      const informant = nodeAddress(state, node) ?? "";
      const next = upsertSubmission(state, id, newSubmission(id, state.height, informant), (row) => ({
        ...row,
        status: "failed",
      }));
      return pushLog(next, `${node} submission ${id.slice(0, 8)} failed: ${str(e.log) ?? ""}`);
    }
    case "trainer.trained":
    case "trainer.outcome": {
      const round = num(e.round);
      const trainer = nodeAddress(state, node);
      if (round === undefined || trainer === undefined) return state;
      const update: Partial<TrainerRow> = {};
      const weightsId = str(e.weightsId);
      const outcome = str(e.outcome);
      if (weightsId !== undefined) update.trained = weightsId;
      if (outcome !== undefined) update.outcome = outcome;
      if (typeof e.canonical === "boolean") update.canonical = e.canonical;
      const next = upsertRound(state, round, (r) => upsertTrainer(r, trainer, update));
      return event.type === "trainer.outcome"
        ? pushLog(
            next,
            `${node} round ${round}: ${outcome ?? "?"}${e.canonical === true ? ", canonical" : ""}`,
          )
        : next;
    }
    case "validator.verdict": {
      const round = num(e.round);
      const validator = nodeAddress(state, node);
      if (round === undefined || validator === undefined || !Array.isArray(e.verdicts)) return state;
      const next = upsertRound(state, round, (r) => withVerdicts(r, validator, e.verdicts as unknown[]));
      return pushLog(next, `${node} verdict on round ${round}`);
    }
    default:
      return event.type.includes(".") ? pushLog(state, describeEvent(node, e)) : state;
  }
}

/** One short line for events the panels do not show otherwise. */
function describeEvent(node: string, e: Record<string, unknown>): string {
  const fields = Object.entries(e)
    .filter(([k]) => k !== "type")
    .slice(0, 4)
    .map(([k, v]) => {
      const text =
        typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : "…";
      return `${k}=${text.length > 12 ? `${text.slice(0, 8)}…` : text}`;
    })
    .join(" ");
  return `${node} ${String(e.type)} ${fields}`.trimEnd();
}

export function reduce(state: ViewState, action: ViewAction): ViewState {
  switch (action.type) {
    case "nodes": {
      const known = new Set(state.accounts.map((a) => a.address));
      const accounts = [
        ...state.accounts,
        ...action.nodes
          .filter((n) => !known.has(n.address))
          .map((n) => ({ address: n.address, balance: 0n, bonded: 0n, unbonding: 0n })),
      ];
      return { ...state, nodes: action.nodes, accounts };
    }
    case "event":
      return applyEvent(state, action.node, action.event);
    case "block": {
      let next = withHeight(state, action.height);
      for (const tx of action.txs)
        if (tx.code === undefined || tx.code === 0) next = applyTx(next, action.height, tx);
      return next;
    }
    case "status": {
      const s = action.status;
      const errors = { ...state.errors };
      delete errors[action.node];
      const next = withHeight(state, s.height);
      return {
        ...next,
        errors,
        chainId: s.chainId,
        consensus: s.consensus,
        peers: s.peers,
        mempool: s.mempool.txs,
        price: s.price,
        canonicalWeightsId: s.canonicalWeightsId,
        ...(s.height >= state.height ? { appHash: s.appHash, blockTime: s.time } : {}),
      };
    }
    case "validators":
      return {
        ...state,
        validators: action.set.validators.map((v) => ({ address: v.address, power: v.power })),
        totalPower: action.set.totalPower,
      };
    case "account": {
      const a = action.account;
      const row = { address: a.address, balance: a.balance, bonded: a.bonded, unbonding: a.unbonding };
      const i = state.accounts.findIndex((x) => x.address === a.address);
      const accounts = state.accounts.slice();
      if (i >= 0) accounts[i] = row;
      else accounts.push(row);
      return { ...state, accounts };
    }
    case "supply":
      return { ...state, supply: { holds: action.supply.holds, actual: action.supply.actual } };
    case "weights": {
      const o = action.overview;
      const price = amount(o.price);
      const value = amount(o.accumulatedValue);
      return {
        ...state,
        canonicalWeightsId: o.canonicalWeightsId,
        weightsVersions: o.history.length,
        ...(price === undefined ? {} : { price }),
        ...(value === undefined ? {} : { accumulatedValue: value }),
      };
    }
    case "replication":
      return { ...state, replication: action.view };
    case "round":
      return upsertRound(state, action.round.id, (r) => ({
        ...r,
        phase: action.round.phase,
        commitEnd: action.round.commitEnd,
        revealEnd: action.round.revealEnd,
        verdictEnd: action.round.verdictEnd,
      }));
    case "open-submissions": {
      let next = state;
      for (const o of action.open) {
        next = upsertSubmission(next, o.submission, newSubmission(o.submission, next.height), (row) => ({
          ...row,
          informant: row.informant || toAddress(o.informant),
          size: o.size,
          ...(o.closesAt === undefined ? {} : { closesAt: o.closesAt }),
        }));
      }
      return closeExpired(next);
    }
    case "error":
      return state.errors[action.node] === action.message
        ? state
        : { ...state, errors: { ...state.errors, [action.node]: action.message } };
    case "log":
      return pushLog(state, action.line);
  }
}
