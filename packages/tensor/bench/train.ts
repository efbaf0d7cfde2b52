/**
 * Training throughput of the genesis-size model (GPT-2, ~3.2M parameters, 64-byte context) on the
 * selected backend, beside the same backend's 1024×1024 matmul rate measured in the same run.
 * Achieved GFLOP/s = 6 × parameters × tokens/s (forward 2N + backward 4N per token; attention's
 * score/value products are not counted, which slightly understates the work done).
 * Target: the training step reaches >= 40% of the matmul rate.
 */
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend.ts";
import { BYTE_TOKENIZER_CLASS, gpt2ConfigJson } from "../src/config.ts";
import { GENESIS_DEFAULTS } from "../src/genesis.ts";
import { ensureGradients } from "../src/gradients.ts";
import { createModel, modelInfo } from "../src/model.ts";
import { AdamW } from "../src/optim.ts";
import { Rng } from "../src/random.ts";
import { lossAndGrads, makeBatch } from "../src/train.ts";

/** Milliseconds of one 1024×1024 float32 matmul (read back, so the work is done). */
function matmulMs(a: tf.Tensor2D, b: tf.Tensor2D): number {
  const t0 = performance.now();
  const c = tf.matMul(a, b);
  c.dataSync();
  c.dispose();
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const bench: BenchModule = async (ctx) => {
  const backend = await initBackend();
  await ensureGradients();
  const g = GENESIS_DEFAULTS;
  const batchSize = ctx.quick ? 8 : g.batchSize;
  const model = createModel(
    gpt2ConfigJson({
      vocabSize: 258,
      nPositions: g.context,
      nEmbd: g.nEmbd,
      nLayer: g.nLayer,
      nHead: g.nHead,
      tokenizerClass: BYTE_TOKENIZER_CLASS,
    }),
    { seed: 1 },
  );
  const params = modelInfo(model).parameterCount;
  const rng = new Rng(1);
  const batch = makeBatch(
    Array.from({ length: batchSize }, () => ({
      tokens: Int32Array.from({ length: g.context + 1 }, () => rng.int(256)),
      weight: 1,
    })),
  );
  const optimizer = new AdamW({ lr: 1e-4 });
  const step = () => {
    const { grads } = lossAndGrads(model, batch);
    optimizer.apply(model.params, grads);
    for (const t of grads.values()) t.dispose();
    model.params.values().next().value!.dataSync();
  };
  // Interleaved rounds (three matmuls, one training step), so that a busy neighbour on a shared
  // machine slows both measurements alike; medians over the rounds.
  const a = tf.randomNormal([1024, 1024], 0, 1, "float32", 1) as tf.Tensor2D;
  const b = tf.randomNormal([1024, 1024], 0, 1, "float32", 2) as tf.Tensor2D;
  const matmulTimes: number[] = [];
  const stepTimes: number[] = [];
  step();
  matmulMs(a, b);
  for (let round = 0; round < (ctx.quick ? 2 : 6); round++) {
    for (let i = 0; i < 3; i++) matmulTimes.push(matmulMs(a, b));
    const t0 = performance.now();
    step();
    stepTimes.push(performance.now() - t0);
  }
  a.dispose();
  b.dispose();
  optimizer.dispose();
  model.dispose();
  const peak = (2 * 1024 ** 3) / (median(matmulTimes) * 1e6);
  const stepMs = median(stepTimes);
  const tokensPerS = (batchSize * g.context) / (stepMs / 1000);
  const achieved = (6 * params * tokensPerS) / 1e9;
  const ratio = (100 * achieved) / peak;
  ctx.log(
    `train: ${backend.name}, ${params} params, batch ${batchSize}×${g.context}, step ${stepMs.toFixed(0)} ms, matmul ${peak.toFixed(1)} GFLOP/s`,
  );
  const row = (metric: string, value: number, unit: string, target?: string, pass?: boolean): BenchRow => ({
    package: "tensor",
    metric,
    value,
    unit,
    ...(target === undefined ? {} : { target, pass }),
  });
  return [
    row(`matmul 1024×1024 (${backend.name})`, peak, "GFLOP/s"),
    row("train genesis model", tokensPerS, "tokens/s"),
    row("train genesis model (6·N·tokens/s)", achieved, "GFLOP/s"),
    row("train / matmul rate", ratio, "%", ">= 40", ratio >= 40),
  ];
};

export default bench;
