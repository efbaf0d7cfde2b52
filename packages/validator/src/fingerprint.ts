/**
 * A submitted model's fingerprint on probe sets drawn after the commit deadline: likelihood and
 * curvature statistics per set, its predictive distributions on the generic and trigger probes (for
 * Jensen–Shannon distances between models), and its weights (for distances in weight space).
 */
import { sha256 } from "@deepshard/protocol";
import { type CausalLM, Rng, readWeights, sequenceLogProbs } from "@deepshard/tensor";
import { curvature } from "./curvature.ts";
import { ValidatorError } from "./errors.ts";
import { average } from "./stats.ts";

export const PROBE_SETS = ["batch", "heldOut", "generic", "trigger"] as const;
export type ProbeSetName = (typeof PROBE_SETS)[number];

/** Token sequences per probe set: the approved batch, held-out text of the same kind, generic text, trigger probes. */
export type ProbeSets = Record<ProbeSetName, number[][]>;

export interface ProbeSizes {
  batch: number;
  heldOut: number;
  generic: number;
  trigger: number;
}

export const DEFAULT_PROBE_SIZES: ProbeSizes = { batch: 10, heldOut: 10, generic: 8, trigger: 8 };

/**
 * Picks the probes from each pool with an RNG seeded by the beacon (a block hash after the commit
 * deadline), so no trainer can know them while training. Pools smaller than the size are used whole.
 */
export function drawProbes(
  beacon: Uint8Array | string,
  pools: ProbeSets,
  sizes: ProbeSizes = DEFAULT_PROBE_SIZES,
): ProbeSets {
  const seedBytes = typeof beacon === "string" ? new TextEncoder().encode(beacon) : beacon;
  const seed = Buffer.from(sha256(seedBytes)).toString("hex");
  const out = {} as ProbeSets;
  for (const name of PROBE_SETS) {
    const rng = new Rng(`${seed}/${name}`);
    const order = rng.shuffle(pools[name].map((_, i) => i));
    out[name] = order.slice(0, sizes[name]).map((i) => pools[name][i]!);
  }
  return out;
}

export interface SetStats {
  /** Σ log p over the set / predicted tokens. */
  meanLogLikelihood: number;
  meanCurvature: number;
  sdCurvature: number;
  /** Per sequence: log-likelihood per predicted token. */
  logLikelihoods: Float64Array;
  curvatures: Float64Array;
  tokens: number;
}

export interface Fingerprint {
  sets: Record<ProbeSetName, SetStats>;
  /** Next-token log-probabilities on the generic then trigger probes, [positions, vocab] per sequence. */
  distributions: Float32Array[];
  /** exp of `distributions`, kept so distances between many models exponentiate once. */
  probabilities: Float32Array[];
  vocab: number;
  /** Every weight, in checkpoint order, as one vector. */
  weights: Float32Array;
  /** Forward-pass tokens spent on this fingerprint. */
  probeTokens: number;
}

function stats(
  model: CausalLM,
  seqs: number[][],
  batchSize: number,
): { stats: SetStats; logProbs: Float32Array[] } {
  const lp = sequenceLogProbs(model, seqs, { batchSize });
  const logLikelihoods = new Float64Array(lp.length);
  const curvatures = new Float64Array(lp.length);
  let total = 0;
  let tokens = 0;
  for (const [i, s] of lp.entries()) {
    const c = curvature(s);
    logLikelihoods[i] = c.logLikelihood / c.positions;
    curvatures[i] = c.score;
    total += c.logLikelihood;
    tokens += c.positions;
  }
  const meanCurvature = average(curvatures);
  return {
    stats: {
      meanLogLikelihood: tokens > 0 ? total / tokens : 0,
      meanCurvature,
      sdCurvature: Math.sqrt(average(curvatures.map((c) => (c - meanCurvature) ** 2))),
      logLikelihoods,
      curvatures,
      tokens,
    },
    logProbs: lp.map((s) => s.logProbs),
  };
}

/** Fingerprints `model` on `probes` (one forward pass per probe sequence). */
export function fingerprint(
  model: CausalLM,
  probes: ProbeSets,
  options: { batchSize?: number } = {},
): Fingerprint {
  for (const name of PROBE_SETS) {
    if (probes[name].length === 0) throw new ValidatorError("INPUT_INVALID", `probe set ${name} is empty`);
  }
  const batchSize = options.batchSize ?? 32;
  const sets = {} as Record<ProbeSetName, SetStats>;
  const distributions: Float32Array[] = [];
  let probeTokens = 0;
  for (const name of PROBE_SETS) {
    const r = stats(model, probes[name], batchSize);
    sets[name] = r.stats;
    probeTokens += probes[name].reduce((n, s) => n + s.length, 0);
    if (name === "generic" || name === "trigger") distributions.push(...r.logProbs);
  }
  const parts = [...readWeights(model).values()];
  const weights = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    weights.set(p, offset);
    offset += p.length;
  }
  const probabilities = distributions.map((d) => d.map(Math.exp));
  return { sets, distributions, probabilities, vocab: model.config.vocabSize, weights, probeTokens };
}

function sameShape(a: Fingerprint, b: Fingerprint): void {
  if (
    a.weights.length !== b.weights.length ||
    a.vocab !== b.vocab ||
    a.distributions.length !== b.distributions.length ||
    a.distributions.some((d, i) => d.length !== b.distributions[i]!.length)
  ) {
    throw new ValidatorError("MODEL_MISMATCH", "fingerprints come from different architectures or probes");
  }
}

/** Squared L2 distance between two models' weights. */
export function weightDistance2(a: Fingerprint, b: Fingerprint): number {
  sameShape(a, b);
  let s = 0;
  for (let i = 0; i < a.weights.length; i++) {
    const d = a.weights[i]! - b.weights[i]!;
    s += d * d;
  }
  return s;
}

export function weightNorm(a: Fingerprint): number {
  let s = 0;
  for (let i = 0; i < a.weights.length; i++) s += a.weights[i]! * a.weights[i]!;
  return Math.sqrt(s);
}

/**
 * Mean Jensen–Shannon distance (square root of the base-2 divergence, in [0, 1]) between two
 * models' next-token distributions over the generic and trigger probe positions.
 */
export function jsDistance(a: Fingerprint, b: Fingerprint): number {
  sameShape(a, b);
  const V = a.vocab;
  let total = 0;
  let rows = 0;
  for (const [i, da] of a.distributions.entries()) {
    const db = b.distributions[i]!;
    const pa = a.probabilities[i]!;
    const pb = b.probabilities[i]!;
    for (let r = 0; r < da.length; r += V) {
      let js = 0;
      for (let v = 0; v < V; v++) {
        const p = pa[r + v]!;
        const q = pb[r + v]!;
        const m = p + q;
        if (m === 0) continue;
        const logm = Math.log(0.5 * m);
        if (p > 0) js += p * (da[r + v]! - logm);
        if (q > 0) js += q * (db[r + v]! - logm);
      }
      total += Math.sqrt(Math.max(0, (0.5 * js) / Math.LN2));
      rows += 1;
    }
  }
  return rows > 0 ? total / rows : 0;
}

/** What a fingerprint says relative to the base model's (all per predicted token, in nats). */
export interface ModelFeatures {
  /** Mean log-likelihood gain over the base, per set. */
  improvement: Record<ProbeSetName, number>;
  /** Gain on the batch minus gain on held-out text of the same kind. */
  membershipGap: number;
  /** Mean curvature on the batch minus on held-out text. */
  curvatureGap: number;
  meanLogLikelihood: Record<ProbeSetName, number>;
  meanCurvature: Record<ProbeSetName, number>;
  /** ‖w − w_base‖₂ and that over ‖w_base‖₂. */
  weightDistance: number;
  relativeWeightDistance: number;
  /** Jensen–Shannon distance from the base model's predictions. */
  jsFromBase: number;
}

export function modelFeatures(fp: Fingerprint, base: Fingerprint): ModelFeatures {
  const improvement = {} as Record<ProbeSetName, number>;
  const meanLogLikelihood = {} as Record<ProbeSetName, number>;
  const meanCurvature = {} as Record<ProbeSetName, number>;
  for (const name of PROBE_SETS) {
    improvement[name] = fp.sets[name].meanLogLikelihood - base.sets[name].meanLogLikelihood;
    meanLogLikelihood[name] = fp.sets[name].meanLogLikelihood;
    meanCurvature[name] = fp.sets[name].meanCurvature;
  }
  const weightDistance = Math.sqrt(weightDistance2(fp, base));
  return {
    improvement,
    membershipGap: improvement.batch - improvement.heldOut,
    curvatureGap: fp.sets.batch.meanCurvature - fp.sets.heldOut.meanCurvature,
    meanLogLikelihood,
    meanCurvature,
    weightDistance,
    relativeWeightDistance: weightDistance / weightNorm(base),
    jsFromBase: jsDistance(fp, base),
  };
}
