/**
 * Fast-DetectGPT's analytic conditional probability curvature (Bao et al., arXiv 2310.05130):
 *
 *   score(x) = (Σ_t log p(x_t|x_<t) − Σ_t μ_t) / sqrt(Σ_t σ²_t)
 *   μ_t = Σ_v q(v|x_<t) log p(v|x_<t),  σ²_t = Σ_v q(v|x_<t) log² p(v|x_<t) − μ_t²
 *
 * p is the scoring model, q the sampling model (the same model by default, as in the paper's
 * white-box setting). Text a model was trained toward scores high: its log-likelihood sits above what
 * the model expects of its own samples. Sums run in float64.
 */
import { ValidatorError } from "./errors.ts";

/** Next-token log-probabilities at every predicted position of one sequence. */
export interface PositionLogProbs {
  positions: number;
  vocab: number;
  /** Row-major [positions, vocab]. */
  logProbs: ArrayLike<number>;
  /** The observed next tokens, one per position. */
  targets: ArrayLike<number>;
}

export interface Curvature {
  /** Σ_t log p(x_t | x_<t). */
  logLikelihood: number;
  /** Σ_t μ_t: the expected log-likelihood of the sampling model's own text. */
  expected: number;
  /** Σ_t σ²_t. */
  variance: number;
  /** The normalised discrepancy; 0 when the variance is 0. */
  score: number;
  positions: number;
}

/** Log-softmax of logit rows [rows, vocab] in float64 (for scoring from stored logits). */
export function logSoftmaxRows(logits: ArrayLike<number>, vocab: number): Float64Array {
  if (!(vocab > 0) || logits.length % vocab !== 0) {
    throw new ValidatorError("INPUT_INVALID", `${logits.length} logits are not rows of ${vocab}`);
  }
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length; r += vocab) {
    let max = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[r + v]!);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[r + v]! - max);
    const lse = max + Math.log(sum);
    for (let v = 0; v < vocab; v++) out[r + v] = logits[r + v]! - lse;
  }
  return out;
}

function check(x: PositionLogProbs, what: string): void {
  if (x.logProbs.length !== x.positions * x.vocab || x.targets.length !== x.positions) {
    throw new ValidatorError("INPUT_INVALID", `${what} log-probabilities do not match their shape`, {
      meta: { positions: x.positions, vocab: x.vocab, values: x.logProbs.length, targets: x.targets.length },
    });
  }
}

/** The curvature of one sequence under scoring model p, with q = `sampling` (default: p itself). */
export function curvature(scoring: PositionLogProbs, sampling: PositionLogProbs = scoring): Curvature {
  check(scoring, "scoring");
  if (sampling !== scoring) {
    check(sampling, "sampling");
    if (sampling.positions !== scoring.positions || sampling.vocab !== scoring.vocab) {
      throw new ValidatorError(
        "MODEL_MISMATCH",
        "sampling and scoring models must share positions and vocabulary",
        {
          meta: {
            scoring: [scoring.positions, scoring.vocab],
            sampling: [sampling.positions, sampling.vocab],
          },
        },
      );
    }
  }
  const { positions, vocab } = scoring;
  let logLikelihood = 0;
  let expected = 0;
  let variance = 0;
  for (let t = 0; t < positions; t++) {
    const row = t * vocab;
    const target = scoring.targets[t]!;
    if (!(target >= 0 && target < vocab)) {
      throw new ValidatorError(
        "INPUT_INVALID",
        `target ${target} at position ${t} is outside the vocabulary`,
      );
    }
    logLikelihood += scoring.logProbs[row + target]!;
    let mu = 0;
    let second = 0;
    for (let v = 0; v < vocab; v++) {
      const lp = scoring.logProbs[row + v]!;
      const q = Math.exp(sampling.logProbs[row + v]!);
      // An underflowed probability adds nothing (and 0 · −∞ would be NaN).
      if (q === 0) continue;
      mu += q * lp;
      second += q * lp * lp;
    }
    expected += mu;
    variance += second - mu * mu;
  }
  const score = variance > 0 ? (logLikelihood - expected) / Math.sqrt(variance) : 0;
  return { logLikelihood, expected, variance, score, positions };
}
