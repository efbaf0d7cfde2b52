/**
 * Scores one data submission on the five criteria, in integer basis points, with per-segment
 * weights: the content of a validator's `data.vote`.
 */
import { BASIS_POINTS, CRITERIA, type Criterion, type SegmentWeight } from "@deepshard/protocol";
import { type ExternalJudge, ExternalJudgeError, type JudgeScores } from "./external-judge.ts";
import { jaccard, type MinHashSignature, signatureOf } from "./minhash.ts";
import { DEFAULT_SCORERS, type Scorer, type ScoringContext } from "./scorers.ts";
import { type Segment, splitSegments } from "./segments.ts";

export type ScoreVector = Record<Criterion, number>;

export interface ScoreOptions {
  /** Replace any default scorer. */
  scorers?: Partial<Record<Criterion, Scorer>> | undefined;
  /** An external judge for alignment, truthfulness and objectivity; scoring completes without it. */
  judge?: ExternalJudge | undefined;
  /** Weights of the criteria in a segment's combined value (default: equal). */
  criteriaWeights?: Partial<ScoreVector> | undefined;
  /** Most segment weights in a vote (the protocol allows 256). */
  maxSegments?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface SegmentScore extends Segment {
  scores: ScoreVector;
  /** Weighted mean of the criteria, basis points. */
  combined: number;
}

export interface SubmissionScore {
  /** Byte-weighted mean over segments per criterion, basis points: the vote's score vector. */
  scores: ScoreVector;
  /** Relative weights of the blob's parts (best part = 10,000), when it has parts that differ. */
  segmentWeights: SegmentWeight[] | undefined;
  segments: SegmentScore[];
  judge: { used: boolean; error?: string };
}

/** Scores a blob. Empty or non-UTF-8 blobs score zero on every criterion. */
export async function scoreSubmission(
  blob: Uint8Array,
  ctx: ScoringContext,
  options: ScoreOptions = {},
): Promise<SubmissionScore> {
  let segments: Segment[];
  try {
    segments = splitSegments(blob);
  } catch {
    segments = [];
  }
  const zero = Object.fromEntries(CRITERIA.map((c) => [c, 0])) as ScoreVector;
  if (segments.length === 0)
    return { scores: zero, segmentWeights: undefined, segments: [], judge: { used: false } };

  let judged: JudgeScores | undefined;
  let judgeError: string | undefined;
  if (options.judge) {
    try {
      judged = await options.judge.rate(segments.map((s) => s.text).join("\n\n"), options.signal);
    } catch (err) {
      if (!(err instanceof ExternalJudgeError)) throw err;
      judgeError = err.shortMessage;
    }
  }

  const scorers = { ...DEFAULT_SCORERS, ...options.scorers };
  const weights = CRITERIA.map((c) => options.criteriaWeights?.[c] ?? 1);
  const weightSum = weights.reduce((a, b) => a + b, 0) || 1;
  const seen: MinHashSignature[] = [];
  const scored: SegmentScore[] = [];
  for (const segment of segments) {
    const signature = signatureOf(segment.text);
    const selfSimilarity = Math.max(0, ...seen.map((s) => jaccard(signature, s)));
    seen.push(signature);
    const input = { text: segment.text, signature, selfSimilarity, judge: judged };
    const scores = {} as ScoreVector;
    for (const c of CRITERIA) scores[c] = toBasisPoints(await scorers[c](input, ctx));
    const combined = Math.round(CRITERIA.reduce((a, c, i) => a + scores[c] * weights[i]!, 0) / weightSum);
    scored.push({ ...segment, scores, combined });
  }

  const totalBytes = scored.reduce((a, s) => a + s.length, 0);
  const scores = {} as ScoreVector;
  for (const c of CRITERIA) {
    scores[c] = Math.round(scored.reduce((a, s) => a + s.scores[c] * s.length, 0) / totalBytes);
  }
  return {
    scores,
    segmentWeights: segmentWeights(scored, options.maxSegments ?? 256),
    segments: scored,
    judge: judgeError === undefined ? { used: judged !== undefined } : { used: false, error: judgeError },
  };
}

/**
 * Weights proportional to each part's combined value, the best part at 10,000; consecutive parts are
 * merged (byte-weighted) when there are more than `max`. Undefined when every part weighs the same.
 */
function segmentWeights(scored: SegmentScore[], max: number): SegmentWeight[] | undefined {
  if (scored.length < 2) return undefined;
  const groups: SegmentScore[][] = [];
  const per = Math.ceil(scored.length / max);
  for (let i = 0; i < scored.length; i += per) groups.push(scored.slice(i, i + per));
  const merged = groups.map((g) => {
    const bytes = g.reduce((a, s) => a + s.length, 0);
    const last = g[g.length - 1]!;
    return {
      offset: g[0]!.offset,
      length: last.offset + last.length - g[0]!.offset,
      value: g.reduce((a, s) => a + s.combined * s.length, 0) / bytes,
    };
  });
  const best = Math.max(...merged.map((m) => m.value));
  if (best <= 0 || merged.every((m) => m.value === best)) return undefined;
  return merged.map((m) => ({
    offset: m.offset,
    length: m.length,
    weight: toBasisPoints(m.value / best),
  }));
}

export function toBasisPoints(fraction: number): number {
  if (!Number.isFinite(fraction)) return 0;
  return Math.round(Math.min(1, Math.max(0, fraction)) * BASIS_POINTS);
}
