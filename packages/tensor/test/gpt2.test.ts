import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { parseConfig } from "../src/config.ts";
import { evaluate, logLikelihoods } from "../src/eval.ts";
import type { CausalLM } from "../src/model.ts";
import { createModel, loadModel, modelInfo, saveModel, weightsDigest } from "../src/model.ts";
import { SafetensorsFile, writeSafetensors } from "../src/safetensors.ts";
import { train } from "../src/train.ts";

// A copy of ../shared/fixtures/hf/gpt2-tiny (made with transformers 5.17), so CI needs nothing outside the repo.
const FIXTURE = join(import.meta.dirname, "fixtures", "gpt2-tiny");
const expected = JSON.parse(await readFile(join(FIXTURE, "expected.json"), "utf8")) as {
  optimizer: { lr: number; betas: [number, number]; eps: number; weight_decay: number; applies_to: string };
  steps: number;
  loss_before_each_step: number[];
  fast_detectgpt_curvature: { log_likelihood_sum: number[] };
};

async function readFixture(): Promise<{ ids: Int32Array; logits: Float32Array; trained: Float32Array }> {
  const ref = await SafetensorsFile.open(join(FIXTURE, "reference.safetensors"));
  const post = await SafetensorsFile.open(join(FIXTURE, "train_reference.safetensors"));
  try {
    return {
      ids: (await ref.read("input_ids")).data as Int32Array,
      logits: await ref.readF32("logits"),
      trained: await post.readF32("logits_after_training"),
    };
  } finally {
    await ref.close();
    await post.close();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function logitsOf(model: CausalLM, ids: Int32Array): Float32Array {
  const t = tf.tidy(() => model.forward(tf.tensor2d(ids, [2, 16], "int32")));
  const out = t.dataSync() as Float32Array;
  t.dispose();
  return out;
}

let fixture: Awaited<ReturnType<typeof readFixture>>;
let dir: string;

beforeAll(async () => {
  const report = await initBackend({ backend: "wasm" });
  expect(report.name).toBe("wasm");
  fixture = await readFixture();
  dir = await mkdtemp(join(tmpdir(), "ds-gpt2-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("GPT-2 against the transformers fixture (wasm backend)", () => {
  it("reproduces the reference logits within 1e-4 and leaks no tensors", async () => {
    const model = await loadModel(FIXTURE);
    expect(modelInfo(model).parameterCount).toBe(1000 * 64 + 64 * 64 + 2 * (12 * 64 * 64 + 13 * 64) + 2 * 64);
    const before = tf.memory().numTensors;
    expect(maxAbsDiff(logitsOf(model, fixture.ids), fixture.logits)).toBeLessThan(1e-4);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("five AdamW steps reproduce the loss trajectory and post-training logits within 1e-3", async () => {
    // expected.json: torch.optim.AdamW over all parameters, no clipping, the same batch every step.
    expect(expected.optimizer.applies_to).toBe("all parameters");
    const model = await loadModel(FIXTURE);
    const tensorsPerStep: number[] = [];
    const result = await train(
      model,
      [{ tokens: fixture.ids.subarray(0, 16) }, { tokens: fixture.ids.subarray(16) }],
      {
        steps: expected.steps,
        batchSize: 2,
        shuffle: false,
        lr: expected.optimizer.lr,
        betas: expected.optimizer.betas,
        eps: expected.optimizer.eps,
        weightDecay: expected.optimizer.weight_decay,
        maxGradNorm: null,
        onProgress: () => {
          tensorsPerStep.push(tf.memory().numTensors);
        },
      },
    );
    expect(result.losses).toHaveLength(expected.steps);
    for (const [i, loss] of result.losses.entries()) {
      expect(Math.abs(loss - expected.loss_before_each_step[i]!)).toBeLessThan(1e-3);
    }
    expect(maxAbsDiff(logitsOf(model, fixture.ids), fixture.trained)).toBeLessThan(1e-3);
    // Optimizer state exists from step 1 on; after that the count must not grow.
    expect(new Set(tensorsPerStep.slice(1)).size).toBe(1);
    model.dispose();
  });

  it("scores sequences like transformers (Σ log p matches expected.json)", async () => {
    const model = await loadModel(FIXTURE);
    const seqs = [fixture.ids.subarray(0, 16), fixture.ids.subarray(16)];
    const scores = logLikelihoods(model, seqs);
    for (const [i, s] of scores.entries()) {
      expect(s.tokens).toBe(15);
      expect(
        Math.abs(s.logLikelihood - expected.fast_detectgpt_curvature.log_likelihood_sum[i]!),
      ).toBeLessThan(1e-3);
    }
    const ev = evaluate(model, seqs);
    const sum = expected.fast_detectgpt_curvature.log_likelihood_sum;
    expect(ev.tokens).toBe(30);
    expect(ev.meanCrossEntropy).toBeCloseTo(-(sum[0]! + sum[1]!) / 30, 4);
    expect(ev.perplexity).toBeCloseTo(Math.exp(ev.meanCrossEntropy), 6);
    model.dispose();
  });

  it("save → load round-trips bit for bit, and loads GPT2Model names without the transformer. prefix", async () => {
    const model = await loadModel(FIXTURE);
    const out = join(dir, "roundtrip");
    await saveModel(model, out);
    const back = await loadModel(out);
    expect(weightsDigest(back)).toBe(weightsDigest(model));
    expect(back.config.raw).toEqual(model.config.raw);

    const bare = join(dir, "bare");
    await saveModel(model, bare);
    const entries = [...model.params].map(([name, v]) => ({
      name: name.replace(/^transformer\./, ""),
      dtype: "F32" as const,
      shape: v.shape,
      data: v.dataSync() as Float32Array,
    }));
    await writeSafetensors(join(bare, "model.safetensors"), entries);
    const fromBare = await loadModel(bare);
    expect(weightsDigest(fromBare)).toBe(weightsDigest(model));
    for (const m of [model, back, fromBare]) m.dispose();
  });

  it("names the missing or misshapen tensor", async () => {
    const model = createModel(
      parseConfig({ model_type: "gpt2", vocab_size: 10, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 }),
    );
    const broken = join(dir, "broken");
    await saveModel(model, broken);
    const entries = [...model.params]
      .filter(([name]) => name !== "transformer.ln_f.bias")
      .map(([name, v]) => ({
        name,
        dtype: "F32" as const,
        shape: v.shape,
        data: v.dataSync() as Float32Array,
      }));
    await writeSafetensors(join(broken, "model.safetensors"), entries);
    await expect(loadModel(broken)).rejects.toMatchObject({
      code: "WEIGHTS_MISSING",
      meta: { tensor: "transformer.ln_f.bias" },
    });

    const config = JSON.parse(await readFile(join(broken, "config.json"), "utf8"));
    await writeFile(join(broken, "config.json"), JSON.stringify({ ...config, n_embd: 16 }));
    await expect(loadModel(broken)).rejects.toMatchObject({ code: "WEIGHTS_SHAPE" });
    await writeFile(join(broken, "config.json"), "{not json");
    await expect(loadModel(broken)).rejects.toMatchObject({ code: "CONFIG_INVALID" });
    model.dispose();
  });

  it("rejects invalid configs with a typed error", () => {
    expect(() => parseConfig({ model_type: "bert" })).toThrow(
      expect.objectContaining({ code: "CONFIG_UNSUPPORTED" }),
    );
    expect(() => parseConfig({ model_type: "gpt2", n_embd: 10, n_head: 3 })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
    expect(() => parseConfig({ model_type: "gpt2", n_layer: -1 })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
    expect(() => parseConfig({ model_type: "gpt2", n_embd: 2 ** 40 })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
    expect(() => parseConfig([1])).toThrow(expect.objectContaining({ code: "CONFIG_INVALID" }));
  });
});
