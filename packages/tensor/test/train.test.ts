import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { gpt2ConfigJson } from "../src/config.ts";
import { ensureGradients } from "../src/gradients.ts";
import { createModel, loadModel, weightsDigest } from "../src/model.ts";
import { AdamW, clipGradNorm, globalNorm } from "../src/optim.ts";
import type { TrainProgress } from "../src/train.ts";
import { lossAndGrads, makeBatch, train, windows } from "../src/train.ts";

const config = gpt2ConfigJson({ vocabSize: 40, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 });
const seqs = [
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  [5, 6, 7, 8, 9, 10, 11, 12],
  [20, 21, 22, 23, 24, 25],
  [30, 31, 32, 33, 34, 35, 36, 37, 38],
];
let dir: string;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  await ensureGradients();
  dir = await mkdtemp(join(tmpdir(), "ds-train-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function lossOf(rows: { tokens: number[]; weight?: number }[]): number {
  const model = createModel(config, { seed: 1 });
  const { loss, grads } = lossAndGrads(model, makeBatch(windows(rows, 16)));
  for (const g of grads.values()) g.dispose();
  model.dispose();
  return loss;
}

describe("training", () => {
  it("weights examples: weight 0 removes one, equal weights are the plain mean, 2 counts double", () => {
    const [a, b] = [seqs[0]!, seqs[2]!];
    const la = lossOf([{ tokens: a }]);
    const lb = lossOf([{ tokens: b }]);
    const na = a.length - 1;
    const nb = b.length - 1;
    expect(lossOf([{ tokens: a }, { tokens: b, weight: 0 }])).toBeCloseTo(la, 5);
    expect(
      lossOf([
        { tokens: a, weight: 3 },
        { tokens: b, weight: 3 },
      ]),
    ).toBeCloseTo((la * na + lb * nb) / (na + nb), 5);
    expect(lossOf([{ tokens: a, weight: 2 }, { tokens: b }])).toBeCloseTo(
      (2 * la * na + lb * nb) / (2 * na + nb),
      5,
    );
  });

  it("cuts long examples into context-sized windows and rejects bad input", () => {
    const rows = windows([{ tokens: Array.from({ length: 40 }, (_, i) => i % 40) }], 16);
    expect(rows.map((r) => r.tokens.length)).toEqual([17, 17, 8]);
    expect(() => windows([{ tokens: [1, 2], weight: -1 }], 16)).toThrow(
      expect.objectContaining({ code: "INPUT_INVALID" }),
    );
    const model = createModel(config, { seed: 1 });
    expect(() => lossAndGrads(model, makeBatch(windows([{ tokens: [1, 99] }], 16)))).toThrow(
      expect.objectContaining({ code: "INPUT_INVALID" }),
    );
    model.dispose();
  });

  it("lowers the loss, reports progress, writes checkpoints and leaks no tensors", async () => {
    const model = createModel(config, { seed: 2 });
    const start = tf.memory().numTensors;
    const progress: TrainProgress[] = [];
    const counts: number[] = [];
    const result = await train(
      model,
      seqs.map((tokens) => ({ tokens })),
      {
        epochs: 15,
        batchSize: 2,
        lr: 1e-2,
        seed: 3,
        warmupSteps: 3,
        schedule: "cosine",
        checkpointDir: join(dir, "ckpt"),
        checkpointEvery: 10,
        onProgress: (p) => {
          progress.push(p);
          counts.push(tf.memory().numTensors);
        },
      },
    );
    expect(result.steps).toBe(30);
    expect(progress.map((p) => p.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(progress[0]!.lr).toBeCloseTo(1e-2 / 3, 8);
    expect(progress.at(-1)!.lr).toBeCloseTo(1e-3, 8);
    expect(progress.at(-1)!.tokens).toBe(result.tokens);
    expect(result.tokens).toBe(15 * (9 + 7 + 5 + 8));
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.6);
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(tf.memory().numTensors).toBe(start);
    expect((await readdir(join(dir, "ckpt"))).sort()).toEqual(["step-10", "step-20", "step-30"]);
    const saved = await loadModel(join(dir, "ckpt", "step-30"));
    expect(weightsDigest(saved)).toBe(weightsDigest(model));
    saved.dispose();
    model.dispose();
  });

  it("the data order follows the seed", async () => {
    const run = async (seed: number) => {
      const model = createModel(config, { seed: 4 });
      await train(
        model,
        seqs.map((tokens) => ({ tokens })),
        { epochs: 1, batchSize: 1, seed },
      );
      const digest = weightsDigest(model);
      model.dispose();
      return digest;
    };
    expect(await run(1)).not.toBe(await run(2));
  });

  it("stops when aborted", async () => {
    const model = createModel(config, { seed: 4 });
    const controller = new AbortController();
    const run = train(
      model,
      seqs.map((tokens) => ({ tokens })),
      {
        epochs: 10,
        onProgress: (p) => (p.step === 2 ? controller.abort() : undefined),
        signal: controller.signal,
      },
    );
    await expect(run).rejects.toThrow();
    model.dispose();
  });
});

describe("AdamW and clipping", () => {
  it("follows torch.optim.AdamW step by step, with decay only where asked", () => {
    const p = new Map([
      ["w", tf.variable(tf.tensor1d([0.5, -1]))],
      ["b", tf.variable(tf.tensor1d([0.25]))],
    ]);
    const opt = new AdamW({
      lr: 0.1,
      betas: [0.9, 0.99],
      eps: 1e-8,
      weightDecay: 0.5,
      decay: (n) => n === "w",
    });
    const gradsSeq = [
      [0.3, -0.2, 1],
      [-0.1, 0.4, 0.5],
      [0.2, 0.2, -2],
    ];
    // Reference in float64, the torch formula written out.
    const ref = [0.5, -1, 0.25];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    for (const [t, g] of gradsSeq.entries()) {
      const grads = new Map([
        ["w", tf.tensor1d(g.slice(0, 2))],
        ["b", tf.tensor1d(g.slice(2))],
      ]);
      opt.apply(p, grads);
      for (const x of grads.values()) x.dispose();
      for (let i = 0; i < 3; i++) {
        if (i < 2) ref[i]! *= 1 - 0.1 * 0.5;
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.99 * v[i]! + 0.01 * g[i]! * g[i]!;
        const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - 0.99 ** (t + 1)) + 1e-8;
        ref[i]! -= (0.1 / (1 - 0.9 ** (t + 1))) * (m[i]! / denom);
      }
    }
    const got = [...p.get("w")!.dataSync(), ...p.get("b")!.dataSync()];
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo(ref[i]!, 6);
    expect(opt.step).toBe(3);
    opt.dispose();
    for (const x of p.values()) x.dispose();
  });

  it("clips the global norm to the limit and leaves small gradients alone", () => {
    const grads = new Map([
      ["a", tf.tensor1d([3, 0])],
      ["b", tf.tensor1d([4])],
    ]);
    const clipped = clipGradNorm(grads, 1);
    expect(clipped.norm).toBeCloseTo(5, 5);
    expect(globalNorm(clipped.grads)).toBeCloseTo(1, 5);
    const same = clipGradNorm(grads, 10);
    expect(Array.from(same.grads.get("b")!.dataSync())).toEqual([4]);
    for (const m of [grads, clipped.grads, same.grads]) for (const g of m.values()) g.dispose();
  });
});
