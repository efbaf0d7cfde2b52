/**
 * Llama (transformers' LlamaForCausalLM): RMSNorm, rotary position embeddings in the Hugging Face
 * convention (rotate_half over the two halves of each head), SwiGLU MLP, grouped-query attention,
 * torch Linear weights stored [out, in], lm_head tied or separate.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { LlamaConfig } from "./config.ts";
import { embed, linear, mergeHeads, rmsNorm, silu, splitHeads } from "./layers.ts";
import type { CausalLM, ParamSpec } from "./model.ts";
import type { Attend } from "./stage.ts";
import { TransformerStage } from "./stage.ts";

const P = "model.";

export function llamaParameters(c: LlamaConfig): ParamSpec[] {
  const std = 0.02;
  const d = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKeyValueHeads * c.headDim;
  const specs: ParamSpec[] = [
    { name: `${P}embed_tokens.weight`, shape: [c.vocabSize, d], init: "normal", std },
  ];
  for (let i = 0; i < c.numLayers; i++) {
    const l = `${P}layers.${i}.`;
    specs.push({ name: `${l}input_layernorm.weight`, shape: [d], init: "ones" });
    for (const [proj, out, inp] of [
      ["q_proj", qDim, d],
      ["k_proj", kvDim, d],
      ["v_proj", kvDim, d],
      ["o_proj", d, qDim],
    ] as const) {
      specs.push({ name: `${l}self_attn.${proj}.weight`, shape: [out, inp], init: "normal", std });
      if (c.attentionBias) specs.push({ name: `${l}self_attn.${proj}.bias`, shape: [out], init: "zeros" });
    }
    specs.push({ name: `${l}post_attention_layernorm.weight`, shape: [d], init: "ones" });
    for (const [proj, out, inp] of [
      ["gate_proj", c.intermediateSize, d],
      ["up_proj", c.intermediateSize, d],
      ["down_proj", d, c.intermediateSize],
    ] as const) {
      specs.push({ name: `${l}mlp.${proj}.weight`, shape: [out, inp], init: "normal", std });
      if (c.mlpBias) specs.push({ name: `${l}mlp.${proj}.bias`, shape: [out], init: "zeros" });
    }
  }
  specs.push({ name: `${P}norm.weight`, shape: [d], init: "ones" });
  if (!c.tieWordEmbeddings)
    specs.push({ name: "lm_head.weight", shape: [c.vocabSize, d], init: "normal", std });
  return specs;
}

/** LlamaModel checkpoints (no lm_head) name their weights without the `model.` prefix. */
export function llamaAliases(name: string): string[] {
  return name.startsWith(P) ? [name, name.slice(P.length)] : [name];
}

/**
 * cos and sin [T, headDim] for positions past..past+T-1, computed in float32 steps as transformers
 * does: inv_freq = 1/θ^(2i/d), angle = position·inv_freq, both halves of the head share the angles.
 */
export function ropeTables(c: LlamaConfig, past: number, steps: number): [Float32Array, Float32Array] {
  const d = c.headDim;
  const half = d / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(c.ropeTheta ** Math.fround((2 * i) / d));
  const cos = new Float32Array(steps * d);
  const sin = new Float32Array(steps * d);
  for (let t = 0; t < steps; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround((past + t) * inv[i]!);
      const cv = Math.cos(angle);
      const sv = Math.sin(angle);
      cos[t * d + i] = cv;
      cos[t * d + i + half] = cv;
      sin[t * d + i] = sv;
      sin[t * d + i + half] = sv;
    }
  }
  return [cos, sin];
}

function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const half = x.shape[3] / 2;
  const [x1, x2] = tf.split(x, [half, half], -1) as [tf.Tensor4D, tf.Tensor4D];
  const rotated = tf.concat([tf.neg(x2), x1], -1);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** Llama, or the stage of it that runs `range` (default: every layer, the whole model). */
export class LlamaModel extends TransformerStage<LlamaConfig> implements CausalLM {
  #b(name: string): tf.Tensor | undefined {
    return this.params.get(name) as tf.Tensor | undefined;
  }

  protected embedTokens(ids: tf.Tensor2D): tf.Tensor {
    return embed(this.w(`${P}embed_tokens.weight`), ids);
  }

  protected blocks(h: tf.Tensor, attend: Attend, past: number): tf.Tensor {
    const c = this.config;
    const steps = h.shape[1]!;
    const [cosData, sinData] = ropeTables(c, past, steps);
    const cos = tf.tensor2d(cosData, [steps, c.headDim]);
    const sin = tf.tensor2d(sinData, [steps, c.headDim]);
    for (let i = this.firstLayer; i <= this.lastLayer; i++) {
      const l = `${P}layers.${i}.`;
      const proj = (x: tf.Tensor, name: string) =>
        linear(x, this.w(`${l}${name}.weight`), this.#b(`${l}${name}.bias`));
      const a = rmsNorm(h, this.w(`${l}input_layernorm.weight`), c.rmsNormEps);
      const q = applyRope(splitHeads(proj(a, "self_attn.q_proj"), c.numHeads), cos, sin);
      const k = applyRope(splitHeads(proj(a, "self_attn.k_proj"), c.numKeyValueHeads), cos, sin);
      const v = splitHeads(proj(a, "self_attn.v_proj"), c.numKeyValueHeads);
      h = tf.add(h, proj(mergeHeads(attend(i, q, k, v)), "self_attn.o_proj"));
      const m = rmsNorm(h, this.w(`${l}post_attention_layernorm.weight`), c.rmsNormEps);
      const gated = tf.mul(silu(proj(m, "mlp.gate_proj")), proj(m, "mlp.up_proj"));
      h = tf.add(h, proj(gated, "mlp.down_proj"));
    }
    return h;
  }

  protected head(h: tf.Tensor): tf.Tensor {
    const c = this.config;
    const n = rmsNorm(h, this.w(`${P}norm.weight`), c.rmsNormEps);
    return linear(n, this.w<tf.Rank.R2>(c.tieWordEmbeddings ? `${P}embed_tokens.weight` : "lm_head.weight"));
  }
}
