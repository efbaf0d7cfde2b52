/**
 * The shapes of the ledger state. Every entry is immutable: a change replaces the object, which
 * lets the state root cache each entry's hash by identity. Accounts and ids are lower-case hex.
 */
export interface Account {
  readonly balance: bigint;
  /** The nonce of the last accepted transaction; the next one must be nonce + 1. */
  readonly nonce: bigint;
}

export interface Validator {
  readonly bonded: bigint;
  /** Height from which the validator may rejoin the set; 0 when not jailed. */
  readonly jailedUntil: number;
  readonly tombstoned: boolean;
  /** Blocks missed in the current downtime window. */
  readonly missed: number;
}

export interface Unbonding {
  readonly owner: string;
  readonly amount: bigint;
  readonly matureAt: number;
}

/** A byte range of a blob and its weight in basis points; bytes outside every range weigh 10000. */
export interface Segment {
  readonly offset: number;
  readonly length: number;
  readonly weight: number;
}

export interface ScoreVoteRecord {
  /** Basis points per criterion, in the order of CRITERIA. */
  readonly scores: readonly number[];
  readonly segments: readonly Segment[];
}

/** A data submission inside its voting window (keyed by its tx hash); the stake is escrowed. */
export interface Submission {
  readonly informant: string;
  readonly contentHash: string;
  readonly size: number;
  readonly stake: bigint;
  readonly submittedAt: number;
  readonly closesAt: number;
  readonly votes: Readonly<Record<string, ScoreVoteRecord>>;
}

export type DataStatus = "open" | "accepted" | "rejected" | "expired";

/** A content hash ever submitted (keyed by it): refuses resubmission; the outcome once closed. */
export interface DataRecord {
  readonly informant: string;
  readonly submission: string;
  readonly status: DataStatus;
  readonly value: number;
  readonly threshold: number;
  readonly closedAt: number;
  readonly reward: bigint;
}

export interface QueueEntry {
  readonly contentHash: string;
  readonly size: number;
  readonly value: number;
  /** The validators' aggregated segment weights (stake-weighted median per byte range). */
  readonly segments: readonly Segment[];
}

export interface TrainerSubmission {
  readonly commitment: string;
  readonly stake: bigint;
  /** Set by the reveal; empty until then. */
  readonly weightsId: string;
  readonly verdicts: Readonly<Record<string, boolean>>;
}

export type RoundStatus = "open" | "completed" | "failed";

export interface Round {
  readonly id: number;
  readonly status: RoundStatus;
  readonly baseWeightsId: string;
  readonly batchRoot: string;
  /** Queue keys and content hashes of the batch, in order. */
  readonly batch: readonly QueueEntry[];
  readonly batchKeys: readonly string[];
  readonly hyperParameters: Readonly<Record<string, string | number>>;
  readonly seed: string;
  readonly openedAt: number;
  readonly commitEnd: number;
  readonly revealEnd: number;
  readonly verdictEnd: number;
  readonly trainers: Readonly<Record<string, TrainerSubmission>>;
  /** Set when the round completes. */
  readonly canonicalWeightsId: string;
}

/** Canonical weights, keyed by weights id; `index` orders the history. */
export interface WeightsRecord {
  readonly index: number;
  readonly weightsId: string;
  /** -1 for the genesis weights. */
  readonly round: number;
  readonly height: number;
}

export interface License {
  readonly buyer: string;
  readonly weightsId: string;
  readonly price: bigint;
  readonly height: number;
}

export interface ValidatorPower {
  readonly address: string;
  readonly power: bigint;
}

/** The chain-wide counters, one entry. */
export interface Meta {
  readonly chainId: string;
  readonly height: number;
  /** Milliseconds since the Unix epoch, from the last block's header. */
  readonly time: number;
  readonly lastBlockHash: string;
  readonly genesisSupply: bigint;
  readonly minted: bigint;
  readonly burned: bigint;
  /** Σ of accepted data values and completed rounds' value: drives the price. */
  readonly accumulatedValue: bigint;
  readonly price: bigint;
  readonly nextUnbondingSeq: number;
  readonly nextQueueSeq: number;
  readonly nextRoundId: number;
  /** Id of the round in progress, -1 when none. */
  readonly activeRound: number;
  readonly canonicalWeightsId: string;
  readonly weightsCount: number;
  /** The active set for the next block: top N by bonded stake, never jailed or tombstoned. */
  readonly validators: readonly ValidatorPower[];
  /** The set that signed the last block (its commit arrives with the next block). */
  readonly lastValidators: readonly ValidatorPower[];
}
