/**
 * Every economic and timing parameter of a chain. They come from the genesis file and never
 * change afterwards; heights, windows and counts are numbers, amounts are bigint, fractions are
 * basis points (10000 = 100%).
 */
export interface DowntimeParams {
  /** Blocks per downtime window; counters reset at each window boundary. */
  window: number;
  /** A validator that signs fewer than this share of a window's blocks is jailed. */
  minSignedBps: number;
  /** How many blocks a jailed validator stays out of the set (then it is unjailed automatically). */
  jailBlocks: number;
  slashBps: number;
}

export interface DoubleSignParams {
  slashBps: number;
  /** Evidence older than this many blocks is refused. */
  maxEvidenceAge: number;
}

export interface DataParams {
  minStake: bigint;
  maxSize: number;
  /** Blocks during which validators may vote after a submission. */
  votingWindow: number;
  /** Votes must cover this share of the active stake, or the submission expires (stake back, no reward). */
  quorumBps: number;
  /** Weight of each criterion in the combined value; five numbers summing to 10000. */
  criteriaWeightsBps: number[];
  baseThresholdBps: number;
  /** k of the threshold: base + k × disagreement / 10000. */
  disagreementFactorBps: number;
  /** Minted for an accepted submission of value 10000; scaled linearly with the value. */
  rewardAtFullValue: bigint;
}

export interface TrainingParams {
  /** Accepted submissions per training round. */
  batchSize: number;
  commitWindow: number;
  revealWindow: number;
  verdictWindow: number;
  /** Escrowed by each trainer's commit. */
  stake: bigint;
  maxTrainers: number;
  /** Minted and split among honest trainers when a round makes new canonical weights. */
  roundMint: bigint;
  /** Value (in the same units as data value) a successful round adds to the network's value. */
  roundValue: bigint;
  /** Hyper-parameters handed to every trainer of a round (integers or strings only). */
  hyperParameters: Record<string, string | number>;
}

export interface PriceParams {
  basePrice: bigint;
  /** The price doubles each time the accumulated value grows by this much. */
  doublingValue: bigint;
}

export interface Params {
  maxValidators: number;
  minValidatorBond: bigint;
  unbondingDelay: number;
  minFee: bigint;
  /** Minted to the proposer of each block. */
  blockReward: bigint;
  /** The block reward halves every this many blocks (0: never). */
  blockRewardHalvingInterval: number;
  maxTxsPerBlock: number;
  downtime: DowntimeParams;
  doubleSign: DoubleSignParams;
  data: DataParams;
  training: TrainingParams;
  price: PriceParams;
}

export function defaultParams(): Params {
  return {
    maxValidators: 21,
    minValidatorBond: 1_000n,
    unbondingDelay: 100,
    minFee: 1n,
    blockReward: 10n,
    blockRewardHalvingInterval: 1_000_000,
    maxTxsPerBlock: 10_000,
    downtime: { window: 100, minSignedBps: 5_000, jailBlocks: 50, slashBps: 100 },
    doubleSign: { slashBps: 500, maxEvidenceAge: 1_000 },
    data: {
      minStake: 10n,
      maxSize: 64 * 1024 * 1024,
      votingWindow: 20,
      quorumBps: 5_000,
      criteriaWeightsBps: [2_000, 2_000, 2_000, 2_000, 2_000],
      baseThresholdBps: 5_000,
      disagreementFactorBps: 20_000,
      rewardAtFullValue: 100n,
    },
    training: {
      batchSize: 8,
      commitWindow: 20,
      revealWindow: 10,
      verdictWindow: 10,
      stake: 100n,
      maxTrainers: 32,
      roundMint: 1_000n,
      roundValue: 10_000n,
      hyperParameters: { learningRateMicro: 100, epochs: 1, microBatch: 8 },
    },
    price: { basePrice: 100n, doublingValue: 100_000n },
  };
}
