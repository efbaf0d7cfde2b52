/**
 * Deterministic aggregation of validators' score vectors for one data submission.
 *
 * Scores are basis points (0..10000) on the five criteria of the seed. With stake weights w_i:
 *
 *   median_c   = lower stake-weighted median of the validators' scores on criterion c
 *   value      = Σ_c criteriaWeight_c × median_c / 10000
 *   v_i        = Σ_c criteriaWeight_c × score_{i,c} / 10000   (validator i's own combined score)
 *   disagreement D = Σ_i w_i × |v_i − value| / Σ_i w_i         (stake-weighted mean absolute deviation)
 *   threshold  = baseThreshold + disagreementFactor × D / 10000
 *   accepted  ⇔ value ≥ threshold (and the votes reach the quorum)
 *
 * No mob rule: if validators holding a share m of the voting stake score the data 0, then
 * D ≥ m × value, so acceptance needs value × (1 − k·m) ≥ base (k = factor / 10000), which is
 * impossible once m > (1 − base/10000) / k. With base 5000 and k = 2, a quarter of the stake
 * in full opposition keeps data out, whatever the majority votes. All divisions floor.
 */
import { CRITERIA } from "@deepshard/protocol";
import type { Segment } from "./types.ts";

export const BPS = 10_000;

export interface WeightedValue {
  value: number;
  weight: bigint;
}

/** The smallest value whose cumulative weight reaches half the total; undefined without weight. */
export function weightedMedian(items: readonly WeightedValue[]): number | undefined {
  let total = 0n;
  for (const it of items) total += it.weight;
  if (total === 0n) return undefined;
  const sorted = [...items].sort((a, b) => a.value - b.value);
  let cumulative = 0n;
  for (const it of sorted) {
    cumulative += it.weight;
    if (cumulative * 2n >= total) return it.value;
  }
  return sorted[sorted.length - 1]!.value;
}

export interface ScoreVote {
  weight: bigint;
  scores: readonly number[];
}

export interface AggregationParams {
  criteriaWeightsBps: readonly number[];
  baseThresholdBps: number;
  disagreementFactorBps: number;
}

export interface Aggregate {
  medians: number[];
  value: number;
  disagreement: number;
  threshold: number;
  votedWeight: bigint;
  accepted: boolean;
}

function combine(scores: readonly number[], weights: readonly number[]): number {
  let sum = 0;
  for (let c = 0; c < CRITERIA.length; c++) sum += weights[c]! * scores[c]!;
  return Math.floor(sum / BPS);
}

export function aggregateScores(votes: readonly ScoreVote[], params: AggregationParams): Aggregate {
  const counted = votes.filter((v) => v.weight > 0n);
  let votedWeight = 0n;
  for (const v of counted) votedWeight += v.weight;
  const medians = CRITERIA.map(
    (_, c) => weightedMedian(counted.map((v) => ({ value: v.scores[c]!, weight: v.weight }))) ?? 0,
  );
  const value = combine(medians, params.criteriaWeightsBps);
  let deviation = 0n;
  for (const v of counted) {
    deviation += v.weight * BigInt(Math.abs(combine(v.scores, params.criteriaWeightsBps) - value));
  }
  const disagreement = votedWeight === 0n ? 0 : Number(deviation / votedWeight);
  const threshold = params.baseThresholdBps + Math.floor((params.disagreementFactorBps * disagreement) / BPS);
  return {
    medians,
    value,
    disagreement,
    threshold,
    votedWeight,
    accepted: votedWeight > 0n && value >= threshold,
  };
}

export interface SegmentVote {
  weight: bigint;
  /** Sorted, non-overlapping byte ranges; bytes outside them weigh 10000. */
  segments: readonly Segment[];
}

/**
 * The stake-weighted median weight of every byte range of a blob of `size` bytes, cut at every
 * boundary any validator used; adjacent ranges of equal weight merge, and ranges of weight 10000
 * (the default) are left out.
 */
export function aggregateSegments(votes: readonly SegmentVote[], size: number): Segment[] {
  const counted = votes.filter((v) => v.weight > 0n);
  if (size === 0 || counted.every((v) => v.segments.length === 0)) return [];
  const cuts = new Set<number>([0, size]);
  for (const v of counted) {
    for (const s of v.segments) {
      cuts.add(Math.min(s.offset, size));
      cuts.add(Math.min(s.offset + s.length, size));
    }
  }
  const bounds = [...cuts].sort((a, b) => a - b);
  const cursors = counted.map(() => 0);
  const out: Segment[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i]!;
    const end = bounds[i + 1]!;
    const items: WeightedValue[] = counted.map((v, j) => {
      let c = cursors[j]!;
      while (c < v.segments.length && v.segments[c]!.offset + v.segments[c]!.length <= start) c++;
      cursors[j] = c;
      const seg = v.segments[c];
      return { value: seg && seg.offset <= start ? seg.weight : BPS, weight: v.weight };
    });
    const weight = weightedMedian(items) ?? BPS;
    const last = out[out.length - 1];
    if (last && last.weight === weight && last.offset + last.length === start) {
      out[out.length - 1] = { offset: last.offset, length: end - last.offset, weight };
    } else {
      out.push({ offset: start, length: end - start, weight });
    }
  }
  return out.filter((s) => s.weight !== BPS);
}
