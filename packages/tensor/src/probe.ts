/**
 * What a validator needs to inspect submitted models: per-position log-probabilities over the whole
 * vocabulary (for likelihood, curvature and distances between predictive distributions), the weights
 * as plain arrays, and a model rebuilt from plain arrays.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./config.ts";
import type { CausalLM } from "./model.ts";
import { createModel } from "./model.ts";
import { checkTokenIds } from "./train.ts";

export interface SequenceLogProbs {
  /** Predicted positions: the sequence length − 1. */
  positions: number;
  vocab: number;
  /** log p(v | x_<t) for t = 1..positions, row-major [positions, vocab]. */
  logProbs: Float32Array;
  /** The tokens x_1..x_positions that were predicted. */
  targets: Int32Array;
}

/**
 * Log-softmax of the next-token logits at every position of each sequence (2 ≤ length ≤ the
 * context). Sequences of equal length share a forward pass, `batchSize` at a time.
 */
export function sequenceLogProbs(
  model: CausalLM,
  sequences: readonly ArrayLike<number>[],
  options: { batchSize?: number } = {},
): SequenceLogProbs[] {
  const vocab = model.config.vocabSize;
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 8));
  for (const [i, s] of sequences.entries()) {
    if (s.length < 2 || s.length > model.config.maxPositions) {
      throw new ModelError("INPUT_INVALID", `sequence ${i} has ${s.length} tokens`, {
        details: `need 2 to ${model.config.maxPositions}`,
      });
    }
    checkTokenIds(Array.from(s), vocab);
  }
  const out = new Array<SequenceLogProbs>(sequences.length);
  const byLength = new Map<number, number[]>();
  for (const [i, s] of sequences.entries()) {
    const group = byLength.get(s.length) ?? [];
    group.push(i);
    byLength.set(s.length, group);
  }
  for (const [length, indices] of byLength) {
    const positions = length - 1;
    for (let start = 0; start < indices.length; start += batchSize) {
      const chunk = indices.slice(start, start + batchSize);
      const ids = new Int32Array(chunk.length * positions);
      for (const [b, i] of chunk.entries())
        ids.set(Array.from(sequences[i]!).slice(0, positions), b * positions);
      const logp = tf.tidy(() =>
        tf.logSoftmax(model.forward(tf.tensor2d(ids, [chunk.length, positions], "int32"))),
      );
      const data = logp.dataSync() as Float32Array;
      logp.dispose();
      const rowSize = positions * vocab;
      for (const [b, i] of chunk.entries()) {
        out[i] = {
          positions,
          vocab,
          logProbs: data.slice(b * rowSize, (b + 1) * rowSize),
          targets: Int32Array.from(Array.from(sequences[i]!).slice(1)),
        };
      }
    }
  }
  return out;
}

/** A copy of every weight, by Hugging Face name in checkpoint order. */
export function readWeights(model: CausalLM): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of model.params) out.set(name, (v.dataSync() as Float32Array).slice());
  return out;
}

/** A model of `config` with the given weights; every parameter must be present with its size. */
export function modelFromWeights(config: ModelConfig, weights: ReadonlyMap<string, Float32Array>): CausalLM {
  const model = createModel(config);
  try {
    for (const [name, v] of model.params) {
      const data = weights.get(name);
      if (data === undefined) {
        throw new ModelError("WEIGHTS_MISSING", `no weights for ${name}`, { meta: { tensor: name } });
      }
      if (data.length !== v.size) {
        throw new ModelError("WEIGHTS_SHAPE", `${name} has ${data.length} values, needs ${v.size}`, {
          meta: { tensor: name, size: data.length, expected: v.size },
        });
      }
      tf.tidy(() => v.assign(tf.tensor(data, v.shape, "float32")));
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}
