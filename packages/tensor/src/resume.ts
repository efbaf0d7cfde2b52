/**
 * Training that stops and resumes at any step with the same bits as one uninterrupted `train` run:
 * the optimizer state (AdamW moments and step) is exported at the end of a step range and imported
 * at the start of the next. Validators use it to replay one segment of a trainer's run from the
 * trainer's checkpoint and compare bit for bit (deterministic wasm backend only).
 *
 * The data order, learning-rate schedule, clipping and AdamW arithmetic are those of `train` and
 * `AdamW`, op for op; a test pins `trainRange` over a whole run to `train`'s weights digest.
 */
import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs-core";
import { ModelError } from "./config.ts";
import { ensureGradients } from "./gradients.ts";
import type { CausalLM } from "./model.ts";
import { clipGradNorm } from "./optim.ts";
import { Rng } from "./random.ts";
import { lossAndGrads, makeBatch, type TrainExample, type TrainOptions, windows } from "./train.ts";

/** AdamW's state after `step` optimizer steps: first and second moments by parameter name. */
export interface OptimizerState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export interface TrainRange {
  /** First step to run (0-based); the model holds the weights after `start` steps. */
  start: number;
  /** Step to stop before (default: the run's last step + 1). */
  end?: number;
  /** The optimizer state after `start` steps (required when start > 0). */
  state?: OptimizerState;
}

/** Steps of a whole run with these options (as `train` counts them). */
export function runSteps(model: CausalLM, examples: readonly TrainExample[], options: TrainOptions): number {
  const rows = windows(examples, maxLength(model, options));
  const perEpoch = Math.ceil(rows.length / batchSize(options));
  return options.steps ?? perEpoch * (options.epochs ?? 1);
}

function maxLength(model: CausalLM, options: TrainOptions): number {
  return Math.min(options.maxLength ?? model.config.maxPositions, model.config.maxPositions);
}

function batchSize(options: TrainOptions): number {
  return Math.max(1, Math.floor(options.batchSize ?? 8));
}

function scheduledLr(options: TrainOptions, step: number, steps: number): number {
  const lr = options.lr ?? 1e-3;
  const warmup = options.warmupSteps ?? 0;
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (options.schedule !== "cosine" || steps <= warmup + 1) return lr;
  const progress = (step - warmup) / (steps - warmup - 1);
  return lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * progress)));
}

/**
 * Runs steps [start, end) of the run `train(model, examples, options)` would make, on `model` in
 * place, and returns the optimizer state after them.
 */
export async function trainRange(
  model: CausalLM,
  examples: readonly TrainExample[],
  options: TrainOptions,
  range: TrainRange,
): Promise<{ state: OptimizerState; losses: number[] }> {
  await ensureGradients();
  const rows = windows(examples, maxLength(model, options));
  if (rows.length === 0) throw new ModelError("INPUT_INVALID", "no example has 2 or more tokens");
  const size = batchSize(options);
  const perEpoch = Math.ceil(rows.length / size);
  const steps = options.steps ?? perEpoch * (options.epochs ?? 1);
  const end = Math.min(range.end ?? steps, steps);
  const start = range.start;
  if (!(Number.isInteger(start) && start >= 0 && start <= end)) {
    throw new ModelError(
      "INPUT_INVALID",
      `step range [${start}, ${end}) is not within the run of ${steps} steps`,
    );
  }
  if (start > 0 && range.state?.step !== start) {
    throw new ModelError(
      "INPUT_INVALID",
      `resuming at step ${start} needs the optimizer state after ${start} steps`,
    );
  }
  const [beta1, beta2] = options.betas ?? [0.9, 0.999];
  const eps = options.eps ?? 1e-8;
  const weightDecay = options.weightDecay ?? 0.01;
  const decays = options.decay ?? (() => true);
  const maxGradNorm = options.maxGradNorm === undefined ? 1.0 : options.maxGradNorm;

  const m = new Map<string, tf.Variable>();
  const v = new Map<string, tf.Variable>();
  // The data order: the same RNG draws as `train`, replayed (without training) up to `start`.
  const rng = new Rng(options.seed ?? 0);
  let order: number[] = [];
  const losses: number[] = [];
  try {
    for (const [name, p] of model.params) {
      const saved = (which: Map<string, Float32Array> | undefined) => {
        const data = which?.get(name);
        if (data === undefined) return tf.zerosLike(p);
        if (data.length !== p.size) {
          throw new ModelError(
            "WEIGHTS_SHAPE",
            `optimizer state for ${name} has ${data.length} values, needs ${p.size}`,
          );
        }
        return tf.tensor(data, p.shape, "float32");
      };
      m.set(
        name,
        tf.tidy(() => tf.variable(saved(range.state?.m), false)),
      );
      v.set(
        name,
        tf.tidy(() => tf.variable(saved(range.state?.v), false)),
      );
    }
    for (let step = 0; step < end; step++) {
      const slot = step % perEpoch;
      if (slot === 0) {
        order = rows.map((_, i) => i);
        if (options.shuffle !== false) rng.shuffle(order);
      }
      if (step < start) continue;
      options.signal?.throwIfAborted();
      const batch = makeBatch(order.slice(slot * size, (slot + 1) * size).map((i) => rows[i]!));
      const { loss, grads } = lossAndGrads(model, batch);
      let update = grads;
      if (maxGradNorm !== null) {
        update = clipGradNorm(grads, maxGradNorm).grads;
        for (const g of grads.values()) g.dispose();
      }
      const lr = scheduledLr(options, step, steps);
      // AdamW.apply, op for op.
      const t = step + 1;
      const stepSize = lr / (1 - beta1 ** t);
      const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
      for (const [name, p] of model.params) {
        const g = update.get(name);
        if (!g) continue;
        const mv = m.get(name)!;
        const vv = v.get(name)!;
        const decay = decays(name) ? weightDecay : 0;
        tf.tidy(() => {
          const decayed = decay === 0 ? p : tf.mul(p, 1 - lr * decay);
          const mNew = tf.add(mv, tf.mul(tf.sub(g, mv), 1 - beta1));
          const vNew = tf.add(tf.mul(vv, beta2), tf.mul(tf.mul(g, g), 1 - beta2));
          const denom = tf.add(tf.div(tf.sqrt(vNew), bc2Sqrt), eps);
          mv.assign(mNew);
          vv.assign(vNew);
          p.assign(tf.sub(decayed, tf.mul(tf.div(mNew, denom), stepSize)));
        });
      }
      for (const g of update.values()) g.dispose();
      losses.push(loss);
    }
    const read = (vars: Map<string, tf.Variable>) =>
      new Map([...vars].map(([name, x]) => [name, (x.dataSync() as Float32Array).slice()]));
    return { state: { step: end, m: read(m), v: read(v) }, losses };
  } finally {
    for (const x of [...m.values(), ...v.values()]) x.dispose();
  }
}

/** sha256 (hex) of an optimizer state: step, then each moment's name and little-endian F32 bytes. */
export function optimizerDigest(state: OptimizerState): string {
  const hash = createHash("sha256");
  hash.update(`step:${state.step};`);
  for (const [which, map] of [
    ["m", state.m],
    ["v", state.v],
  ] as const) {
    for (const name of [...map.keys()].sort()) {
      const data = map.get(name)!;
      hash.update(`${which}:${name};`);
      hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  }
  return hash.digest("hex");
}
