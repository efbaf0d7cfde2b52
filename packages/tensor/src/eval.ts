/**
 * Mean next-token cross-entropy and perplexity of a model over a set of token sequences
 * (`deepshard model eval`). Sequences longer than the context are scored in consecutive windows.
 */
import * as tf from "@tensorflow/tfjs-core";
import { ModelError } from "./config.ts";
import type { CausalLM } from "./model.ts";
import { tokenizerFor } from "./tokenizer.ts";
import { checkTokenIds, makeBatch, windows } from "./train.ts";

export interface EvalResult {
  /** Mean of −log p(x_t | x_<t) over every scored token, in nats. */
  meanCrossEntropy: number;
  /** exp(meanCrossEntropy). */
  perplexity: number;
  /** Scored tokens (each sequence's first token has no prediction). */
  tokens: number;
  sequences: number;
}

export interface EvalOptions {
  batchSize?: number;
  /** Window length (default: the model's context). */
  maxLength?: number;
}

export interface WindowScore {
  /** Σ log p(x_t | x_<t) over the window's predicted tokens. */
  logLikelihood: number;
  /** Predicted tokens in the window. */
  tokens: number;
}

/** Scores every window (sequences cut at the context length), in input order. */
export function logLikelihoods(
  model: CausalLM,
  sequences: readonly ArrayLike<number>[],
  options: EvalOptions = {},
): WindowScore[] {
  const maxLength = Math.min(options.maxLength ?? model.config.maxPositions, model.config.maxPositions);
  const rows = windows(
    sequences.map((tokens) => ({ tokens })),
    maxLength,
  );
  const batchSize = Math.max(1, options.batchSize ?? 8);
  const out: WindowScore[] = [];
  const vocab = model.config.vocabSize;
  for (let i = 0; i < rows.length; i += batchSize) {
    const batch = makeBatch(rows.slice(i, i + batchSize));
    checkTokenIds(batch.inputs, vocab);
    checkTokenIds(batch.targets, vocab);
    const perRow = tf.tidy(() => {
      const logits = model.forward(tf.tensor2d(batch.inputs, [batch.size, batch.length], "int32"));
      const logp = tf.logSoftmax(logits);
      const onehot = tf.cast(
        tf.oneHot(tf.tensor2d(batch.targets, [batch.size, batch.length], "int32"), vocab),
        "float32",
      );
      const picked = tf.sum(tf.mul(logp, onehot), -1);
      return tf.sum(tf.mul(picked, tf.tensor2d(batch.weights, [batch.size, batch.length])), -1);
    });
    const sums = perRow.dataSync();
    perRow.dispose();
    for (const [j, row] of rows.slice(i, i + batchSize).entries()) {
      out.push({ logLikelihood: sums[j]!, tokens: row.tokens.length - 1 });
    }
  }
  return out;
}

export function evaluate(
  model: CausalLM,
  sequences: readonly ArrayLike<number>[],
  options: EvalOptions = {},
): EvalResult {
  const scores = logLikelihoods(model, sequences, options);
  const tokens = scores.reduce((n, s) => n + s.tokens, 0);
  const total = scores.reduce((a, s) => a + s.logLikelihood, 0);
  if (tokens === 0) throw new ModelError("INPUT_INVALID", "no sequence has 2 or more tokens to score");
  const meanCrossEntropy = -total / tokens;
  return { meanCrossEntropy, perplexity: Math.exp(meanCrossEntropy), tokens, sequences: sequences.length };
}

/** `evaluate` over texts, tokenized by the model's own tokenizer, each text ended by its EOS token. */
export function evaluateTexts(
  model: CausalLM,
  texts: readonly string[],
  options: EvalOptions = {},
): EvalResult {
  const tok = tokenizerFor(model.config);
  return evaluate(
    model,
    texts.map((t) => [...tok.encode(t), tok.eosTokenId]),
    options,
  );
}
