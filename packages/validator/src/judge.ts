/**
 * Verdicts on a training round's submissions. The validator's own reference replicas (honest runs of
 * the round's recipe with its own seeds) give the honest band, so the rules hold even when most
 * submitters lie. Every rule is a ratio to what the references show, with a threshold; a rule's
 * "badness" is scaled so that 1 is its threshold. A rejected submission scores its worst badness; an
 * accepted one scores by how far its ratios together stray from an honest model's (Verdict.deviation).
 */
import { randomBytes } from "node:crypto";
import { Rng } from "@deepshard/tensor";
import { ValidatorError } from "./errors.ts";
import {
  type Fingerprint,
  jsDistance,
  type ModelFeatures,
  modelFeatures,
  weightDistance2,
} from "./fingerprint.ts";
import { average, median, pairs } from "./stats.ts";

/** How much the submissions may widen the references' band (see judgeRound). */
export const MAX_WIDENING = 1.5;

export const REASON_CODES = [
  "replay_mismatch",
  "weights_unchanged",
  "copy",
  "short_update",
  "small_update",
  "too_far",
  "predictions_diverge",
  "no_improvement",
  "no_membership_gap",
] as const;
/** VerdictReason codes, valid `training.verdict` reason strings (lower case, ≤ 32 characters). */
export type ReasonCode = (typeof REASON_CODES)[number];

export interface VerdictReason {
  code: ReasonCode;
  /** The measured ratio (see VerdictThresholds for what each one is). */
  value: number;
  threshold: number;
  /** 1 at the threshold, above 1 when the rule fires. */
  badness: number;
}

export interface VerdictThresholds {
  /** ‖w − w_base‖ over the references' average below this: the base returned unchanged. */
  unchanged: number;
  /** Progress along the references' mean update ū (see SubmissionReport.progress) below this: training skipped or replaced. */
  shortUpdate: number;
  /** ‖w − w_base‖ over the references' average below this: fewer training steps than the recipe's. */
  smallUpdate: number;
  /** Mean squared weight distance to the references over theirs to each other, above this. */
  tooFar: number;
  /** Mean Jensen–Shannon distance to the references over theirs to each other, above this. */
  predictionsDiverge: number;
  /** Batch log-likelihood gain over the base, as a fraction of the references', below this. */
  improvement: number;
  /** Membership gap as a fraction of the references' (checked only when theirs is clear), below this. */
  membershipGap: number;
  /** Squared weight distance between two submissions over the references' mutual one, below this: a copy. */
  copy: number;
}

/**
 * Calibrated on the adversary benchmark (bench/) on the reduced and the full genesis model (four
 * rounds of 20 honest trainers). On the full model honest update sizes stayed within 0.965–1.030 of
 * the references' (a standard deviation of ~0.01) while runs that skip a quarter of the batch reached
 * only 0.87–0.90; honest progress stayed within 0.96–1.07 (its mean moves by up to ±0.04 with the
 * references drawn), and honest batch improvement within 0.985–1.015 of the references'.
 */
export const DEFAULT_THRESHOLDS: VerdictThresholds = {
  unchanged: 0.01,
  shortUpdate: 0.88,
  smallUpdate: 0.93,
  tooFar: 2.5,
  predictionsDiverge: 1.15,
  improvement: 0.9,
  membershipGap: 0.25,
  copy: 0.3,
};

/**
 * The improvement ratio, 1 for an honest model, may fall this many of the references' own deviations
 * below 1 (each reference against the others; RoundJudgement.spread) before its rule fires, when that
 * is looser than the threshold: a recipe whose honest runs disagree more loosens the rule instead of
 * rejecting honest trainers. Three references give a 2-degree-of-freedom estimate that can come out
 * several times too large by chance, so the widening stops at MAX_SPREAD_WIDENING × the threshold's
 * margin below 1, and the rule never switches itself off. Update size and progress are not widened:
 * their leave-one-out spreads came out 0.6–3× and ~2× the honest submissions' on the full model (one
 * round's 0.029 for update size would have let two of five skip-25 runs through).
 */
export const SPREAD_Z = 4;
export const MAX_SPREAD_WIDENING = 3;
/**
 * The membership gap is judged only when it is clear: the references' mean gap above this many of
 * its uncertainties, the larger of their spread and the standard error of their gaps over the probes
 * (gains on each batch probe against each held-out one). Three references alone give a
 * 2-degree-of-freedom spread that can come out tiny by chance: on one round of the full genesis model
 * they agreed to within a few percent while honest gaps ranged −1.3 to 1.3× theirs, and a rule judged on
 * that rejected 9 of 20 honest trainers; the per-probe error (~14 degrees of freedom) does not.
 */
export const CLEAR_GAP_SPREADS = 4;

/**
 * Submissions are compared pairwise (copies) on count sketches of their updates: every weight is
 * added, with a random sign, into one of PAIR_SKETCH_BUCKETS buckets, so the squared distance between
 * two sketches estimates the squared weight distance within a relative standard deviation of at most
 * √(2/buckets) (2.2% here) whatever the update looks like, as long as the hashing is unknown to the
 * submitters (JudgeInput.seed). Pairs the sketch puts below COPY_CANDIDATE × the copy threshold are
 * measured exactly. This keeps the pairwise search O(submissions² × buckets) instead of
 * O(submissions² × weights): at 65 submissions of the 3.2M-weight genesis model it was most of the
 * judging time, and it grows with every trainer.
 */
export const PAIR_SKETCH_BUCKETS = 4096;
export const COPY_CANDIDATE = 2;

/**
 * How far each ratio strays across honest trainers: about one standard deviation, rounded up, on the
 * adversary benchmark on the full genesis model (20 honest runs in each of rounds 1, 3 and 7: standard
 * deviations 0.017–0.021 for progress, 0.008–0.011 for update size, 0.046–0.054 for the weight
 * distance, 0.027–0.029 for the prediction distance and 0.006–0.007 for improvement). These scale the
 * ratios into Verdict.deviation; the thresholds do not depend on them.
 */
export const HONEST_SPREAD = {
  progress: 0.025,
  updateSize: 0.015,
  far: 0.06,
  js: 0.04,
  improvement: 0.008,
} as const;

export interface ModelSubmission {
  id: string;
  fingerprint: Fingerprint;
  /** Result of a bit-exact replay of a training segment, when the trainer used the deterministic backend. */
  replay?: { ok: boolean } | undefined;
}

export interface SubmissionReport {
  /** ⟨w − base, ū⟩ / ‖ū‖², over what an honest model is expected to show (≈ 1 when honest). */
  progress: number;
  /** ‖w − base‖ / mean_j ‖r_j − base‖: the update's size next to the references'. */
  updateSize: number;
  /** mean_j ‖w − r_j‖² / mean_{i<j} ‖r_i − r_j‖². */
  farRatio: number;
  /** mean_j JS(w, r_j) / mean_{i<j} JS(r_i, r_j). */
  jsRatio: number;
  /**
   * min over other submissions of ‖w − s‖² / mean_{i<j} ‖r_i − r_j‖², and which one: exact below
   * COPY_CANDIDATE × the copy threshold, estimated from the pairwise sketches above it.
   */
  nearestRatio: number;
  nearest: string | undefined;
  improvementRatio: number;
  membershipGapRatio: number | undefined;
  features: ModelFeatures;
}

export interface Verdict {
  id: string;
  accept: boolean;
  /** Rules that fired, worst first. */
  reasons: VerdictReason[];
  /**
   * Root sum of squares of the progress, update size, weight distance, prediction distance and
   * improvement ratios' deviations from what an honest model shows (1, and referenceBand / band for
   * the distances), each in its honest spread (HONEST_SPREAD) and counted on the side that means
   * trouble only (less progress, a smaller update or less improvement; farther from the references).
   * Training on slightly different data than the batch (a few poisoned examples) moves several ratios
   * a little at once, none past its threshold.
   */
  deviation: number;
  /**
   * A continuous suspicion score, for ranking: > 1 ⇔ rejected, then the worst badness over all rules;
   * an accepted submission scores deviation / (1 + deviation), in [0, 1), so the accepted rank by
   * their deviation and below every rejected one.
   */
  score: number;
  report: SubmissionReport;
}

export interface RoundJudgement {
  verdicts: Verdict[];
  /** Pairs of submissions closer than the copy threshold. */
  closePairs: { a: string; b: string; ratio: number }[];
  /**
   * The band the ratios divide by (mean squared weight distance, mean JS distance between honest
   * models), and the references' own estimate of it.
   */
  band: { weights2: number; js: number };
  referenceBand: { weights2: number; js: number };
  /**
   * The references' spread around an honest 1: the root mean square of (ratio − 1) over references,
   * each judged against the others (leave-one-out), for the progress, update size and improvement ratios
   * (only improvement's widens its threshold: see SPREAD_Z).
   */
  spread: { progress: number; updateSize: number; improvement: number };
  /** The thresholds applied, after widening by the spread. */
  thresholds: VerdictThresholds;
}

export interface JudgeInput {
  base: Fingerprint;
  /** Fingerprints of the validator's own reference replicas (at least 2). */
  references: Fingerprint[];
  submissions: ModelSubmission[];
  thresholds?: Partial<VerdictThresholds>;
  /**
   * Seeds the hashing of the pairwise sketches (see PAIR_SKETCH_BUCKETS). Submitters must not know it
   * when they submit: a beacon after the commit deadline, or (the default) fresh random bytes.
   */
  seed?: string;
}

const below = (value: number, threshold: number) => (1 - value) / (1 - threshold);
const above = (value: number, threshold: number) => (value - 1) / (threshold - 1);

/** Judges every submission of a round against the references and each other. */
export function judgeRound(input: JudgeInput): RoundJudgement {
  const given = { ...DEFAULT_THRESHOLDS, ...input.thresholds };
  const { base, references } = input;
  if (references.length < 2) {
    throw new ValidatorError(
      "TOO_FEW_REFERENCES",
      "at least 2 reference replicas are needed for an honest band",
      {
        meta: { references: references.length },
      },
    );
  }
  const ids = new Set(input.submissions.map((s) => s.id));
  if (ids.size !== input.submissions.length)
    throw new ValidatorError("INPUT_INVALID", "submission ids must be unique");

  const referenceBand = {
    weights2: average(pairs(references).map(([a, b]) => weightDistance2(a, b))),
    js: average(pairs(references).map(([a, b]) => jsDistance(a, b))),
  };
  const subs = input.submissions;
  const toRefs2 = subs.map((s) => average(references.map((r) => weightDistance2(s.fingerprint, r))));
  const toRefsJs = subs.map((s) => average(references.map((r) => jsDistance(s.fingerprint, r))));
  // With few references the band rests on few pairs and may come out narrow by chance, which would
  // reject honest models. An honest submission is as far from a reference as two references are
  // from each other, so the submissions' median distance to the references may widen the band, by
  // at most MAX_WIDENING: submitters can loosen the band that little, and can never tighten it.
  const widen = (ref: number, median: number) =>
    ref * Math.min(MAX_WIDENING, Math.max(1, ref > 0 ? median / ref : 1));
  const band = {
    weights2: widen(referenceBand.weights2, median(toRefs2)),
    js: widen(referenceBand.js, median(toRefsJs)),
  };
  const refFeatures = references.map((r) => modelFeatures(r, base));
  const refImprovement = average(refFeatures.map((f) => f.improvement.batch));
  const refGaps = refFeatures.map((f) => f.membershipGap);
  const refGap = average(refGaps);
  // A gap counts as "clear" when it stands out from the references' spread and from its probe error
  // (see CLEAR_GAP_SPREADS).
  const gapSpread = Math.sqrt(average(refGaps.map((g) => (g - refGap) ** 2)));
  const gapError = average(references.map((r) => gapStandardError(r, base)));
  const gapIsClear = refGap > 0 && refGap > CLEAR_GAP_SPREADS * Math.max(gapSpread, gapError);
  const refDistance = average(refFeatures.map((f) => f.weightDistance));

  const progressAlong = progressMeter(base, references, band.weights2);
  // Each reference judged against the others shows how far honest ratios stray from 1 in this round.
  const others = <T>(xs: T[], i: number) => xs.filter((_, j) => j !== i);
  const rms1 = (xs: number[]) => Math.sqrt(average(xs.map((x) => (x - 1) ** 2)));
  const spread = {
    progress: rms1(references.map((r, i) => progressMeter(base, others(references, i), band.weights2)(r))),
    updateSize: rms1(
      refFeatures.map(
        (f, i) => f.weightDistance / average(others(refFeatures, i).map((g) => g.weightDistance)),
      ),
    ),
    improvement: rms1(
      refFeatures.map(
        (f, i) => f.improvement.batch / average(others(refFeatures, i).map((g) => g.improvement.batch)),
      ),
    ),
  };
  const widened = (threshold: number, deviation: number) =>
    Math.max(1 - MAX_SPREAD_WIDENING * (1 - threshold), Math.min(threshold, 1 - SPREAD_Z * deviation));
  const t: VerdictThresholds = {
    ...given,
    improvement: widened(given.improvement, spread.improvement),
  };

  const farOf = new Map<string, number>();
  for (const [i, s] of subs.entries()) farOf.set(s.id, toRefs2[i]! / band.weights2);

  const nearest = new Map<string, { id: string; ratio: number }>();
  const closePairs: RoundJudgement["closePairs"] = [];
  const copies = new Map<string, number>();
  const sketch = updateSketcher(base, input.seed ?? randomBytes(32).toString("hex"));
  const sketches = new Map(subs.map((s) => [s, sketch(s.fingerprint)]));
  for (const [a, b] of pairs(subs)) {
    const estimate = distance2(sketches.get(a)!, sketches.get(b)!) / band.weights2;
    const ratio =
      estimate < COPY_CANDIDATE * t.copy
        ? weightDistance2(a.fingerprint, b.fingerprint) / band.weights2
        : estimate;
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const cur = nearest.get(x.id);
      if (!cur || ratio < cur.ratio) nearest.set(x.id, { id: y.id, ratio });
    }
    if (ratio < t.copy) {
      closePairs.push({ a: a.id, b: b.id, ratio });
      // A copier's noise adds about `ratio` to its distance from the references, so the farther one of
      // the pair is the copy; when the two are too alike to tell (identical twins), both are copies.
      const fa = farOf.get(a.id)!;
      const fb = farOf.get(b.id)!;
      const flagged = fa - fb >= ratio / 2 ? [a] : fb - fa >= ratio / 2 ? [b] : [a, b];
      for (const x of flagged)
        copies.set(x.id, Math.min(copies.get(x.id) ?? Number.POSITIVE_INFINITY, ratio));
    }
  }

  // An honest model is, on average, as far from the references as they are from each other: when the
  // submissions widened the band, its distance ratios sit below 1, at referenceBand / band.
  const honestFar = referenceBand.weights2 / band.weights2;
  const honestJs = band.js > 0 ? referenceBand.js / band.js : 1;
  // The improvement's honest spread widens with its threshold (see SPREAD_Z).
  const improvementSpread =
    HONEST_SPREAD.improvement *
    (given.improvement < 1 ? Math.max(1, (1 - t.improvement) / (1 - given.improvement)) : 1);
  const verdicts = subs.map((s, index): Verdict => {
    const fp = s.fingerprint;
    const f = modelFeatures(fp, base);
    const progress = progressAlong(fp);
    const updateSize = refDistance > 0 ? f.weightDistance / refDistance : 1;
    const farRatio = farOf.get(s.id)!;
    const jsRatio = band.js > 0 ? toRefsJs[index]! / band.js : 0;
    const improvementRatio = refImprovement !== 0 ? f.improvement.batch / refImprovement : 1;
    const membershipGapRatio = gapIsClear ? f.membershipGap / refGap : undefined;
    const near = nearest.get(s.id);
    const report: SubmissionReport = {
      progress,
      updateSize,
      farRatio,
      jsRatio,
      nearestRatio: near?.ratio ?? Number.POSITIVE_INFINITY,
      nearest: near?.id,
      improvementRatio,
      membershipGapRatio,
      features: f,
    };
    const checks: VerdictReason[] = [];
    const add = (code: ReasonCode, value: number, threshold: number, badness: number) =>
      checks.push({ code, value, threshold, badness });
    if (s.replay && !s.replay.ok) add("replay_mismatch", 0, 1, Number.POSITIVE_INFINITY);
    add(
      "weights_unchanged",
      updateSize,
      t.unchanged,
      updateSize <= 0 ? Number.POSITIVE_INFINITY : t.unchanged / updateSize,
    );
    const copy = copies.get(s.id);
    if (copy !== undefined) add("copy", copy, t.copy, copy <= 0 ? Number.POSITIVE_INFINITY : t.copy / copy);
    add("short_update", progress, t.shortUpdate, below(progress, t.shortUpdate));
    add("small_update", updateSize, t.smallUpdate, below(updateSize, t.smallUpdate));
    add("too_far", farRatio, t.tooFar, above(farRatio, t.tooFar));
    add("predictions_diverge", jsRatio, t.predictionsDiverge, above(jsRatio, t.predictionsDiverge));
    add("no_improvement", improvementRatio, t.improvement, below(improvementRatio, t.improvement));
    if (membershipGapRatio !== undefined) {
      add(
        "no_membership_gap",
        membershipGapRatio,
        t.membershipGap,
        below(membershipGapRatio, t.membershipGap),
      );
    }
    checks.sort((x, y) => y.badness - x.badness);
    const reasons = checks.filter((c) => c.badness > 1);
    const deviation = Math.hypot(
      Math.max(0, 1 - progress) / HONEST_SPREAD.progress,
      Math.max(0, 1 - updateSize) / HONEST_SPREAD.updateSize,
      Math.max(0, farRatio - honestFar) / HONEST_SPREAD.far,
      Math.max(0, jsRatio - honestJs) / HONEST_SPREAD.js,
      Math.max(0, 1 - improvementRatio) / improvementSpread,
    );
    const accept = reasons.length === 0;
    const score = accept ? deviation / (1 + deviation) : checks[0]!.badness;
    return { id: s.id, accept, reasons, deviation, score, report };
  });
  return { verdicts, closePairs, band, referenceBand, spread, thresholds: t };
}

/**
 * A count sketch of a model's update from the base (see PAIR_SKETCH_BUCKETS): one hashed bucket and
 * sign per weight, drawn from `seed`, the same for every model of the round.
 */
function updateSketcher(base: Fingerprint, seed: string): (fp: Fingerprint) => Float64Array {
  const n = base.weights.length;
  const rng = new Rng(`pair-sketch/${seed}`);
  const hash = new Uint32Array(n);
  for (let i = 0; i < n; i++) hash[i] = rng.nextU32();
  const mask = PAIR_SKETCH_BUCKETS - 1;
  return (fp) => {
    const out = new Float64Array(PAIR_SKETCH_BUCKETS);
    for (let i = 0; i < n; i++) {
      const h = hash[i]!;
      const d = fp.weights[i]! - base.weights[i]!;
      out[h & mask]! += h & 0x80000000 ? d : -d;
    }
    return out;
  };
}

function distance2(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

/** Standard error of a model's membership gap over the probes: per-sequence gains over the base. */
function gapStandardError(fp: Fingerprint, base: Fingerprint): number {
  const gains = (set: "batch" | "heldOut") =>
    fp.sets[set].logLikelihoods.map((ll, i) => ll - base.sets[set].logLikelihoods[i]!);
  const errorOfMean = (xs: Float64Array) => {
    if (xs.length < 2) return Number.POSITIVE_INFINITY;
    const m = average(xs);
    return Math.sqrt(xs.reduce((sum, x) => sum + (x - m) ** 2, 0) / (xs.length - 1) / xs.length);
  };
  return Math.hypot(errorOfMean(gains("batch")), errorOfMean(gains("heldOut")));
}

/**
 * Progress of a model along the references' mean update ū from the base: ⟨w − base, ū⟩ / ‖ū‖², over
 * what an honest model is expected to show. ū carries the references' own noise (variance band/2
 * each, band/2k in the mean of k), so an honest projection is about 1 − band/(2k‖ū‖²), not 1.
 */
function progressMeter(
  base: Fingerprint,
  references: Fingerprint[],
  band: number,
): (fp: Fingerprint) => number {
  const n = base.weights.length;
  const update = new Float64Array(n);
  for (const r of references)
    for (let i = 0; i < n; i++) update[i]! += (r.weights[i]! - base.weights[i]!) / references.length;
  let updateNorm2 = 0;
  for (let i = 0; i < n; i++) updateNorm2 += update[i]! * update[i]!;
  const honest = Math.max(0.05, 1 - band / (2 * references.length * updateNorm2));
  return (fp) => {
    if (updateNorm2 === 0) return 0;
    let dot = 0;
    for (let i = 0; i < n; i++) dot += (fp.weights[i]! - base.weights[i]!) * update[i]!;
    return dot / updateNorm2 / honest;
  };
}
