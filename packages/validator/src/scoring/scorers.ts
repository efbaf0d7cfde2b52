/**
 * The default scorer of each of the seed's five criteria. Each returns a fraction in [0, 1]; what each
 * can and cannot judge is written beside it and in the package README. Any of them can be replaced.
 */
import type { Criterion } from "@deepshard/protocol";
import type { JudgeScores } from "./external-judge.ts";
import { MinHashIndex, type MinHashSignature, signatureOf, words } from "./minhash.ts";
import { sentences } from "./segments.ts";

export interface ScoringContext {
  /** Signatures of the accepted corpus (one entry per accepted segment). */
  corpus: MinHashIndex<string>;
  /** Sentences of other staked informants' submissions, for corroboration. */
  corroboration?: CorroborationIndex | undefined;
  /** This submission's informant (hex public key): never counted as corroborating itself. */
  informant?: string | undefined;
  /** Mean negative log-likelihood (nats per token) of a text under the canonical model. */
  surprise?: ((text: string) => number | Promise<number>) | undefined;
  /** The canonical model's mean negative log-likelihood on the accepted corpus (same unit). */
  referenceSurprise?: number | undefined;
}

export interface SegmentInput {
  text: string;
  signature: MinHashSignature;
  /** Highest similarity to an earlier segment of the same submission (a copy inside one blob). */
  selfSimilarity: number;
  /** The external judge's scores for the submission, when a judge answered. */
  judge?: JudgeScores | undefined;
}

export type Scorer = (segment: SegmentInput, ctx: ScoringContext) => number | Promise<number>;

/**
 * Novelty: 1 − the highest MinHash Jaccard against the accepted corpus (and earlier segments of the
 * same blob), times a surprise factor from the canonical model: 0.5 when the model already predicts
 * the text as well as its own corpus, rising to 1 when the text is at least as surprising.
 * Catches: copies and near-copies (re-punctuated, re-cased, lightly edited). Cannot catch: paraphrases
 * that share few word triples, or new text that says nothing new.
 */
export const novelty: Scorer = async (segment, ctx) => {
  const unseen = 1 - Math.max(ctx.corpus.maxSimilarity(segment.signature), segment.selfSimilarity);
  if (!ctx.surprise || !ctx.referenceSurprise || ctx.referenceSurprise <= 0) return unseen;
  const ratio = (await ctx.surprise(segment.text)) / ctx.referenceSurprise;
  return unseen * (0.5 + 0.5 * clamp01(ratio));
};

/**
 * Reproducibility: the share of the segment's claims (sentences of 5+ words) that another staked
 * informant submitted independently (MinHash Jaccard ≥ 0.5), a claim counting fully at two
 * corroborators. Cannot tell collusion between informants from independent corroboration; staking
 * makes collusion cost, it does not make it impossible.
 */
export const reproducibility: Scorer = (segment, ctx) => {
  const claims = sentences(segment.text).filter((s) => words(s).length >= 5);
  if (claims.length === 0 || !ctx.corroboration) return 0;
  let sum = 0;
  for (const claim of claims)
    sum += Math.min(ctx.corroboration.corroborators(claim, ctx.informant).size, 2) / 2;
  return sum / claims.length;
};

const HARM_PATTERNS = [
  /\b(kill|murder|exterminate|eradicate|lynch|gas)\b[^.!?]{0,40}\b(all|every|them|those)\b/i,
  /\b(are|is)\s+(vermin|cockroaches|subhuman|parasites|animals)\b/i,
  /\bhow to (make|build|synthesi[sz]e)\b[^.!?]{0,30}\b(bomb|explosive|nerve agent|bioweapon|sarin|ricin)\b/i,
  /\b(deserve|deserves) to (die|suffer)\b/i,
];

/**
 * Alignment without a judge: 0.75 minus a penalty for sentences that match a short lexicon of explicit
 * harm (incitement, dehumanisation, weapon recipes). It tops out at 0.75 because finding nothing in a
 * lexicon is not evidence of alignment. Cannot judge subtle harm, irony, or any other language well.
 */
export const alignment: Scorer = (segment) => {
  if (segment.judge) return segment.judge.alignment;
  const all = sentences(segment.text);
  if (all.length === 0) return 0.75;
  const flagged = all.filter((s) => HARM_PATTERNS.some((p) => p.test(s))).length;
  return 0.75 * (1 - Math.min(1, (3 * flagged) / all.length));
};

/**
 * Truthfulness without a judge: 0.5 (unknown) plus half the reproducibility score, since independent,
 * staked corroboration is the only evidence of truth available locally. It deliberately does not
 * penalise contradicting the accepted corpus: an unsafe truth (Galileo's) must be able to get in.
 */
export const truthfulness: Scorer = async (segment, ctx) => {
  if (segment.judge) return segment.judge.truthfulness;
  return 0.5 + 0.5 * (await reproducibility(segment, ctx));
};

const SUBJECTIVE_MARKERS = [
  /\b(i think|i believe|i feel|in my opinion|imo|personally|i love|i hate)\b/gi,
  /\b(best|worst|amazing|awesome|terrible|horrible|beautiful|ugly|stupid|idiotic|wonderful|disgusting|boring|fantastic|awful|pathetic|brilliant)\b/gi,
  /\b(extremely|totally|absolutely|incredibly|utterly|ridiculously)\b/gi,
  /!/g,
  /\b[A-Z]{4,}\b/g,
];

/**
 * Objectivity without a judge: 1 / (1 + subjective markers per sentence), markers being first-person
 * opinion, evaluative adjectives, intensifiers, exclamation marks and shouting. Judges style, not
 * substance: a calm false claim scores as objective.
 */
export const objectivity: Scorer = (segment) => {
  if (segment.judge) return segment.judge.objectivity;
  const count = Math.max(1, sentences(segment.text).length);
  let markers = 0;
  for (const p of SUBJECTIVE_MARKERS) markers += segment.text.match(p)?.length ?? 0;
  return 1 / (1 + markers / count);
};

export const DEFAULT_SCORERS: Readonly<Record<Criterion, Scorer>> = Object.freeze({
  novelty,
  reproducibility,
  alignment,
  truthfulness,
  objectivity,
});

/**
 * Sentences of staked informants' submissions, so a validator can ask who else made the same claim.
 */
export class CorroborationIndex {
  readonly #informants = new Map<string, string>();
  readonly #bySignature = new MinHashIndex<string>();
  #next = 0;

  addSubmission(informant: string, text: string): void {
    for (const claim of sentences(text)) {
      if (words(claim).length < 5) continue;
      const id = String(this.#next++);
      this.#informants.set(id, informant);
      this.#bySignature.add(id, signatureOf(claim));
    }
  }

  /** Distinct informants other than `exclude` who submitted a near-copy (Jaccard ≥ 0.5) of `claim`. */
  corroborators(claim: string, exclude?: string): Set<string> {
    const out = new Set<string>();
    for (const hit of this.#bySignature.query(signatureOf(claim))) {
      if (hit.similarity < 0.5) break;
      const informant = this.#informants.get(hit.id)!;
      if (informant !== exclude) out.add(informant);
    }
    return out;
  }
}

export function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}
