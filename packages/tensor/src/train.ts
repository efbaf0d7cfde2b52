/**
 * Fine-tuning a causal LM on token sequences with per-example loss weights: seeded data order,
 * AdamW, global-norm clipping, learning-rate warmup/cosine, periodic checkpoints and a progress
 * callback. On the single-threaded wasm backend the same inputs and seed give bit-identical weights.
 */
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { ModelError } from "./config.ts";
import { ensureGradients } from "./gradients.ts";
import type { CausalLM } from "./model.ts";
import { saveModel } from "./model.ts";
import { AdamW, clipGradNorm, globalNorm } from "./optim.ts";
import { Rng } from "./random.ts";

export interface TrainExample {
  tokens: ArrayLike<number>;
  /** Loss weight of every token of this example (default 1; 0 excludes it). */
  weight?: number;
}

/** A padded batch: next-token targets and per-token loss weights (0 on padding). */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  weights: Float32Array;
  size: number;
  length: number;
  /** Target tokens, padding excluded. */
  tokens: number;
  /** Σ of the per-token weights. */
  totalWeight: number;
}

export interface TrainProgress {
  step: number;
  steps: number;
  epoch: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Target tokens trained on so far. */
  tokens: number;
  elapsedMs: number;
}

export interface TrainOptions {
  /** Optimizer steps (default: epochs × batches per epoch). */
  steps?: number;
  epochs?: number;
  batchSize?: number;
  /** Longest input per row; longer examples are cut into consecutive windows (default: the context). */
  maxLength?: number;
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Parameters that get weight decay (default all, as torch.optim.AdamW over model.parameters()). */
  decay?: (name: string) => boolean;
  /** Clip the global gradient norm to this (default 1.0); null disables clipping. */
  maxGradNorm?: number | null;
  warmupSteps?: number;
  /** After warmup: constant, or cosine decay to 10% of lr at the last step. */
  schedule?: "constant" | "cosine";
  /** Seeds the data order. */
  seed?: number | string;
  /** Shuffle examples every epoch (default true). */
  shuffle?: boolean;
  /** Save to `<checkpointDir>/step-<n>` every `checkpointEvery` steps and after the last. */
  checkpointDir?: string;
  checkpointEvery?: number;
  onProgress?: (progress: TrainProgress) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface TrainResult {
  steps: number;
  /** Loss of each step, before its update. */
  losses: number[];
  gradNorms: number[];
  tokens: number;
  elapsedMs: number;
}

/**
 * Weighted mean next-token cross-entropy Σ w·CE / Σ w over target tokens (w = the example's weight,
 * 0 on padding): equal weights give the plain mean, an example of weight 2 pulls twice as hard as
 * one of weight 1, and weight 0 removes an example without diluting the rest.
 */
export function weightedCrossEntropy(
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
  weights: tf.Tensor2D,
  totalWeight: number,
): tf.Scalar {
  return tf.tidy(() => {
    const vocab = logits.shape[2];
    const flat = tf.reshape(logits, [-1, vocab]) as tf.Tensor2D;
    const logp = tf.logSoftmax(flat);
    const picked = tf.sum(
      tf.mul(logp, tf.cast(tf.oneHot(tf.reshape(targets, [-1]) as tf.Tensor1D, vocab), "float32")),
      -1,
    );
    return tf.div(
      tf.neg(tf.sum(tf.mul(picked, tf.reshape(weights, [-1])))),
      totalWeight > 0 ? totalWeight : 1,
    ) as tf.Scalar;
  });
}

/** Cuts examples into (input, target) windows of at most maxLength inputs; drops those under 2 tokens. */
export function windows(
  examples: readonly TrainExample[],
  maxLength: number,
): { tokens: Int32Array; weight: number }[] {
  const out: { tokens: Int32Array; weight: number }[] = [];
  for (const [i, ex] of examples.entries()) {
    const weight = ex.weight ?? 1;
    if (!Number.isFinite(weight) || weight < 0) {
      throw new ModelError("INPUT_INVALID", `example ${i} has an invalid weight`, { meta: { weight } });
    }
    const all = Int32Array.from(ex.tokens);
    for (let start = 0; start + 1 < all.length; start += maxLength) {
      out.push({ tokens: all.subarray(start, Math.min(all.length, start + maxLength + 1)), weight });
    }
  }
  return out;
}

/** Right-pads rows to the longest; padding gets target weight 0 and is never attended to (causal). */
export function makeBatch(rows: readonly { tokens: Int32Array; weight: number }[]): Batch {
  const length = Math.max(...rows.map((r) => r.tokens.length - 1));
  const size = rows.length;
  const inputs = new Int32Array(size * length);
  const targets = new Int32Array(size * length);
  const weights = new Float32Array(size * length);
  let tokens = 0;
  let totalWeight = 0;
  for (const [b, r] of rows.entries()) {
    const n = r.tokens.length - 1;
    inputs.set(r.tokens.subarray(0, n), b * length);
    targets.set(r.tokens.subarray(1), b * length);
    weights.fill(r.weight, b * length, b * length + n);
    tokens += n;
    totalWeight += n * r.weight;
  }
  return { inputs, targets, weights, size, length, tokens, totalWeight };
}

/** Throws INPUT_INVALID for an id outside [0, vocab): tfjs would silently read garbage rows. */
export function checkTokenIds(ids: Iterable<number>, vocab: number): void {
  for (const id of ids) {
    if (!(id >= 0 && id < vocab)) {
      throw new ModelError("INPUT_INVALID", `token id ${id} is outside the vocabulary`, { meta: { vocab } });
    }
  }
}

/** Loss and gradients of one batch; the caller disposes the gradient tensors. */
export function lossAndGrads(model: CausalLM, batch: Batch): { loss: number; grads: Map<string, tf.Tensor> } {
  checkTokenIds(batch.inputs, model.config.vocabSize);
  checkTokenIds(batch.targets, model.config.vocabSize);
  const vars = [...model.params.values()];
  const { value, grads } = tf.tidy(() => {
    const inputs = tf.tensor2d(batch.inputs, [batch.size, batch.length], "int32");
    const targets = tf.tensor2d(batch.targets, [batch.size, batch.length], "int32");
    const weights = tf.tensor2d(batch.weights, [batch.size, batch.length], "float32");
    return tf.variableGrads(
      () => weightedCrossEntropy(model.forward(inputs), targets, weights, batch.totalWeight),
      vars,
    );
  });
  const byName = new Map<string, tf.Tensor>();
  for (const [name, v] of model.params) {
    const g = grads[v.name];
    if (g) byName.set(name, g);
  }
  const loss = value.dataSync()[0]!;
  value.dispose();
  return { loss, grads: byName };
}

function scheduledLr(options: TrainOptions, step: number, steps: number): number {
  const lr = options.lr ?? 1e-3;
  const warmup = options.warmupSteps ?? 0;
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (options.schedule !== "cosine" || steps <= warmup + 1) return lr;
  const progress = (step - warmup) / (steps - warmup - 1);
  return lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * progress)));
}

/** Trains `model` in place. */
export async function train(
  model: CausalLM,
  examples: readonly TrainExample[],
  options: TrainOptions = {},
): Promise<TrainResult> {
  await ensureGradients();
  const maxLength = Math.min(options.maxLength ?? model.config.maxPositions, model.config.maxPositions);
  const rows = windows(examples, maxLength);
  if (rows.length === 0) throw new ModelError("INPUT_INVALID", "no example has 2 or more tokens");
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 8));
  const perEpoch = Math.ceil(rows.length / batchSize);
  const steps = options.steps ?? perEpoch * (options.epochs ?? 1);
  const maxGradNorm = options.maxGradNorm === undefined ? 1.0 : options.maxGradNorm;
  const rng = new Rng(options.seed ?? 0);
  const optimizer = new AdamW({
    lr: options.lr ?? 1e-3,
    betas: options.betas ?? [0.9, 0.999],
    eps: options.eps ?? 1e-8,
    weightDecay: options.weightDecay ?? 0.01,
    ...(options.decay ? { decay: options.decay } : {}),
  });
  const result: TrainResult = { steps: 0, losses: [], gradNorms: [], tokens: 0, elapsedMs: 0 };
  const t0 = performance.now();
  let order: number[] = [];
  try {
    for (let step = 0; step < steps; step++) {
      options.signal?.throwIfAborted();
      const epoch = Math.floor(step / perEpoch);
      const slot = step % perEpoch;
      if (slot === 0) {
        order = rows.map((_, i) => i);
        if (options.shuffle !== false) rng.shuffle(order);
      }
      const batch = makeBatch(order.slice(slot * batchSize, (slot + 1) * batchSize).map((i) => rows[i]!));
      const { loss, grads } = lossAndGrads(model, batch);
      let gradNorm: number;
      let update = grads;
      if (maxGradNorm === null) {
        gradNorm = globalNorm(grads);
      } else {
        const clipped = clipGradNorm(grads, maxGradNorm);
        gradNorm = clipped.norm;
        update = clipped.grads;
        for (const g of grads.values()) g.dispose();
      }
      const lr = scheduledLr(options, step, steps);
      optimizer.apply(model.params, update, lr);
      for (const g of update.values()) g.dispose();
      result.steps = step + 1;
      result.losses.push(loss);
      result.gradNorms.push(gradNorm);
      result.tokens += batch.tokens;
      result.elapsedMs = performance.now() - t0;
      const last = step + 1 === steps;
      if (
        options.checkpointDir &&
        (last || (options.checkpointEvery && (step + 1) % options.checkpointEvery === 0))
      ) {
        await saveModel(model, join(options.checkpointDir, `step-${step + 1}`), { step: String(step + 1) });
      }
      await options.onProgress?.({
        step: step + 1,
        steps,
        epoch,
        loss,
        gradNorm,
        lr,
        tokens: result.tokens,
        elapsedMs: result.elapsedMs,
      });
    }
  } finally {
    optimizer.dispose();
  }
  return result;
}
