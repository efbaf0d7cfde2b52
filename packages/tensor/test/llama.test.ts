import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import type { LlamaConfig } from "../src/config.ts";
import { parseConfig } from "../src/config.ts";
import type { CausalLM } from "../src/model.ts";
import { createModel, loadModel, modelInfo, saveModel, weightsDigest } from "../src/model.ts";
import { train } from "../src/train.ts";

/** A straightforward Llama forward pass in float64 loops: the independent reference. */
function referenceLlama(c: LlamaConfig, w: Map<string, Float32Array>, ids: number[]): Float64Array {
  const d = c.hiddenSize;
  const hd = c.headDim;
  const half = hd / 2;
  const T = ids.length;
  const get = (name: string) => w.get(name)!;
  const rms = (x: Float64Array, weight: Float32Array) => {
    let ms = 0;
    for (const v of x) ms += v * v;
    const r = 1 / Math.sqrt(ms / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * weight[i]!);
  };
  /** torch Linear: y[o] = Σ_i W[o, i] x[i] + b[o]. */
  const lin = (x: Float64Array, name: string, out: number) => {
    const W = get(`${name}.weight`);
    const b = w.get(`${name}.bias`);
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < x.length; i++) s += W[o * x.length + i]! * x[i]!;
      y[o] = s;
    }
    return y;
  };
  const rope = (v: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = pos / c.ropeTheta ** ((2 * i) / hd);
        const a = v[h * hd + i]!;
        const b = v[h * hd + i + half]!;
        v[h * hd + i] = a * Math.cos(angle) - b * Math.sin(angle);
        v[h * hd + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  };
  const emb = get("model.embed_tokens.weight");
  let xs = ids.map((id) => Float64Array.from(emb.subarray(id * d, (id + 1) * d)));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const a = rms(xs[t]!, get(`${p}input_layernorm.weight`));
      const q = lin(a, `${p}self_attn.q_proj`, c.numHeads * hd);
      const k = lin(a, `${p}self_attn.k_proj`, c.numKeyValueHeads * hd);
      rope(q, c.numHeads, t);
      rope(k, c.numKeyValueHeads, t);
      qs.push(q);
      ks.push(k);
      vs.push(lin(a, `${p}self_attn.v_proj`, c.numKeyValueHeads * hd));
    }
    xs = xs.map((x, t) => {
      const att = new Float64Array(c.numHeads * hd);
      for (let h = 0; h < c.numHeads; h++) {
        const kv = Math.floor(h / (c.numHeads / c.numKeyValueHeads));
        const scores = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qs[t]![h * hd + i]! * ks[s]![kv * hd + i]!;
          scores.push(dot / Math.sqrt(hd));
        }
        const max = Math.max(...scores);
        const e = scores.map((z) => Math.exp(z - max));
        const sum = e.reduce((u, v) => u + v, 0);
        for (let s = 0; s <= t; s++) {
          for (let i = 0; i < hd; i++) att[h * hd + i]! += (e[s]! / sum) * vs[s]![kv * hd + i]!;
        }
      }
      const o = lin(att, `${p}self_attn.o_proj`, d);
      const h1 = x.map((v, i) => v + o[i]!);
      const m = rms(h1, get(`${p}post_attention_layernorm.weight`));
      const gate = lin(m, `${p}mlp.gate_proj`, c.intermediateSize);
      const up = lin(m, `${p}mlp.up_proj`, c.intermediateSize);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = lin(act, `${p}mlp.down_proj`, d);
      return h1.map((v, i) => v + down[i]!);
    });
  }
  const head = c.tieWordEmbeddings ? "model.embed_tokens" : "lm_head";
  const out = new Float64Array(T * c.vocabSize);
  for (let t = 0; t < T; t++)
    out.set(lin(rms(xs[t]!, get("model.norm.weight")), head, c.vocabSize), t * c.vocabSize);
  return out;
}

const untied = {
  model_type: "llama",
  vocab_size: 37,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 32,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
};
// transformers ≥ 5 writes rope settings as rope_parameters; also: tied head, biases, plain MHA.
const tied = {
  ...untied,
  num_key_value_heads: 4,
  tie_word_embeddings: true,
  attention_bias: true,
  rope_theta: undefined,
  rope_parameters: { rope_type: "default", rope_theta: 500000 },
};

function weightsOf(model: CausalLM): Map<string, Float32Array> {
  return new Map([...model.params].map(([n, v]) => [n, v.dataSync() as Float32Array]));
}

/** Makes the zero-initialised biases nonzero so that the test exercises them. */
function randomizeBiases(model: CausalLM): void {
  for (const [name, v] of model.params) {
    if (name.endsWith(".bias")) tf.tidy(() => v.assign(tf.randomUniform(v.shape, -0.5, 0.5, "float32", 7)));
  }
}

function logits(model: CausalLM, ids: number[]): Float32Array {
  const t = tf.tidy(() => model.forward(tf.tensor2d(ids, [1, ids.length], "int32")));
  const out = t.dataSync() as Float32Array;
  t.dispose();
  return out;
}

const ids = [3, 17, 0, 36, 5, 5, 22, 9, 11, 30];
let dir: string;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  dir = await mkdtemp(join(tmpdir(), "ds-llama-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("Llama", () => {
  for (const [label, raw] of [
    ["grouped-query attention, untied head", untied],
    ["tied head, attention biases, rope_parameters", tied],
  ] as const) {
    it(`matches the loop reference (${label})`, () => {
      const config = parseConfig(JSON.parse(JSON.stringify(raw))) as LlamaConfig;
      const model = createModel(config, { seed: 42 });
      randomizeBiases(model);
      const before = tf.memory().numTensors;
      const got = logits(model, ids);
      expect(tf.memory().numTensors).toBe(before);
      const want = referenceLlama(config, weightsOf(model), ids);
      let max = 0;
      for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
      expect(max).toBeLessThan(1e-4);
      model.dispose();
    });
  }

  it("gives the same logits one token at a time through the KV cache", () => {
    const model = createModel(untied, { seed: 1 });
    const full = logits(model, ids);
    const cache = model.newCache();
    const steps = [ids.slice(0, 4), ...ids.slice(4).map((id) => [id])];
    const pieces: number[] = [];
    for (const s of steps) {
      const t = tf.tidy(() => model.forward(tf.tensor2d(s, [1, s.length], "int32"), cache));
      pieces.push(...t.dataSync());
      t.dispose();
    }
    expect(cache.length).toBe(ids.length);
    cache.dispose();
    for (let i = 0; i < full.length; i++) expect(Math.abs(full[i]! - pieces[i]!)).toBeLessThan(1e-5);
    model.dispose();
  });

  it("save → load round-trips weights and config", async () => {
    const model = createModel(untied, { seed: 3 });
    await saveModel(model, join(dir, "llama"));
    const back = await loadModel(join(dir, "llama"));
    expect(back.config.modelType).toBe("llama");
    expect(weightsDigest(back)).toBe(weightsDigest(model));
    expect(logits(back, ids)).toEqual(logits(model, ids));
    const info = modelInfo(back);
    expect(info.parameterCount).toBe(
      37 * 16 * 2 + 2 * (16 + 16 * 16 + 2 * 8 * 16 + 16 * 16 + 16 + 3 * 16 * 24) + 16,
    );
    model.dispose();
    back.dispose();
  });

  it("trains: gradients flow through RoPE, grouped-query attention and SwiGLU", async () => {
    const model = createModel(untied, { seed: 9 });
    const before = tf.memory().numTensors;
    const result = await train(model, [{ tokens: ids }, { tokens: [...ids].reverse() }], {
      steps: 20,
      batchSize: 2,
      lr: 1e-2,
    });
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.5);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("the same seed gives the same weights", () => {
    const a = createModel(untied, { seed: "genesis" });
    const b = createModel(untied, { seed: "genesis" });
    const c = createModel(untied, { seed: "other" });
    expect(weightsDigest(a)).toBe(weightsDigest(b));
    expect(weightsDigest(a)).not.toBe(weightsDigest(c));
    for (const m of [a, b, c]) m.dispose();
  });

  it("rejects inconsistent head counts and unsupported rope scaling", () => {
    expect(() => parseConfig({ ...untied, num_key_value_heads: 3 })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
    expect(() => parseConfig({ ...untied, rope_scaling: { rope_type: "yarn", factor: 4 } })).toThrow(
      expect.objectContaining({ code: "CONFIG_UNSUPPORTED" }),
    );
  });
});
