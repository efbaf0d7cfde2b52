/**
 * GPT-2 (transformers' GPT2LMHeadModel): learned positions, pre-LayerNorm blocks, Conv1D weights
 * stored [in, out], fused q/k/v projection, lm_head tied to the token embedding.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { GPT2Config } from "./config.ts";
import { dense, embed, geluErf, geluNew, layerNorm, linear, mergeHeads, splitHeads } from "./layers.ts";
import type { CausalLM, ParamSpec } from "./model.ts";
import type { Attend } from "./stage.ts";
import { TransformerStage } from "./stage.ts";

const P = "transformer.";

/** Parameters in Hugging Face's order and naming, with GPT-2's initialisation. */
export function gpt2Parameters(c: GPT2Config): ParamSpec[] {
  const std = 0.02;
  // GPT-2 scales residual projections by 1/sqrt(2·n_layer) at init (transformers' _init_weights).
  const projStd = std / Math.sqrt(2 * c.numLayers);
  const d = c.hiddenSize;
  const specs: ParamSpec[] = [
    { name: `${P}wte.weight`, shape: [c.vocabSize, d], init: "normal", std },
    { name: `${P}wpe.weight`, shape: [c.maxPositions, d], init: "normal", std: 0.01 },
  ];
  for (let i = 0; i < c.numLayers; i++) {
    const h = `${P}h.${i}.`;
    specs.push(
      { name: `${h}ln_1.weight`, shape: [d], init: "ones" },
      { name: `${h}ln_1.bias`, shape: [d], init: "zeros" },
      { name: `${h}attn.c_attn.weight`, shape: [d, 3 * d], init: "normal", std },
      { name: `${h}attn.c_attn.bias`, shape: [3 * d], init: "zeros" },
      { name: `${h}attn.c_proj.weight`, shape: [d, d], init: "normal", std: projStd },
      { name: `${h}attn.c_proj.bias`, shape: [d], init: "zeros" },
      { name: `${h}ln_2.weight`, shape: [d], init: "ones" },
      { name: `${h}ln_2.bias`, shape: [d], init: "zeros" },
      { name: `${h}mlp.c_fc.weight`, shape: [d, c.innerSize], init: "normal", std },
      { name: `${h}mlp.c_fc.bias`, shape: [c.innerSize], init: "zeros" },
      { name: `${h}mlp.c_proj.weight`, shape: [c.innerSize, d], init: "normal", std: projStd },
      { name: `${h}mlp.c_proj.bias`, shape: [d], init: "zeros" },
    );
  }
  specs.push(
    { name: `${P}ln_f.weight`, shape: [d], init: "ones" },
    { name: `${P}ln_f.bias`, shape: [d], init: "zeros" },
  );
  return specs;
}

/** Names a checkpoint may use instead: GPT2Model (no `transformer.` prefix) or an explicit lm_head. */
export function gpt2Aliases(name: string): string[] {
  return name.startsWith(P) ? [name, name.slice(P.length)] : [name];
}

/** GPT-2, or the stage of it that runs `range` (default: every layer, the whole model). */
export class GPT2Model extends TransformerStage<GPT2Config> implements CausalLM {
  protected embedTokens(ids: tf.Tensor2D, past: number): tf.Tensor {
    const steps = ids.shape[1];
    const pos = tf.slice(this.w<tf.Rank.R2>(`${P}wpe.weight`), [past, 0], [steps, -1]);
    return tf.add(embed(this.w(`${P}wte.weight`), ids), pos);
  }

  protected blocks(h: tf.Tensor, attend: Attend): tf.Tensor {
    const c = this.config;
    for (let i = this.firstLayer; i <= this.lastLayer; i++) {
      const l = `${P}h.${i}.`;
      const a = layerNorm(h, this.w(`${l}ln_1.weight`), this.w(`${l}ln_1.bias`), c.layerNormEpsilon);
      const qkv = dense(a, this.w(`${l}attn.c_attn.weight`), this.w(`${l}attn.c_attn.bias`));
      const [q, k, v] = tf.split(qkv, 3, -1).map((t) => splitHeads(t, c.numHeads)) as [
        tf.Tensor4D,
        tf.Tensor4D,
        tf.Tensor4D,
      ];
      const att = mergeHeads(attend(i, q, k, v));
      h = tf.add(h, dense(att, this.w(`${l}attn.c_proj.weight`), this.w(`${l}attn.c_proj.bias`)));
      const m = layerNorm(h, this.w(`${l}ln_2.weight`), this.w(`${l}ln_2.bias`), c.layerNormEpsilon);
      const up = dense(m, this.w(`${l}mlp.c_fc.weight`), this.w(`${l}mlp.c_fc.bias`));
      const act =
        c.activation === "gelu_new" ? geluNew(up) : c.activation === "gelu" ? geluErf(up) : tf.relu(up);
      h = tf.add(h, dense(act, this.w(`${l}mlp.c_proj.weight`), this.w(`${l}mlp.c_proj.bias`)));
    }
    return h;
  }

  protected head(h: tf.Tensor): tf.Tensor {
    const c = this.config;
    const n = layerNorm(h, this.w(`${P}ln_f.weight`), this.w(`${P}ln_f.bias`), c.layerNormEpsilon);
    return linear(n, this.w<tf.Rank.R2>(`${P}wte.weight`));
  }
}
