/**
 * AdamW with torch.optim.AdamW's exact update order (decoupled weight decay applied to the weights
 * before the Adam step), and clipping by global gradient norm as torch.nn.utils.clip_grad_norm_.
 * tfjs's own Adam has no decoupled decay, so a fine-tune would not match a PyTorch trainer.
 */
import * as tf from "@tensorflow/tfjs-core";

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay (default: all, as torch.optim.AdamW on model.parameters()). */
  decay?: (name: string) => boolean;
}

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly #decay: (name: string) => boolean;
  readonly #m = new Map<string, tf.Variable>();
  readonly #v = new Map<string, tf.Variable>();
  /** Steps taken so far. */
  step = 0;

  constructor(options: AdamWOptions = {}) {
    this.lr = options.lr ?? 1e-3;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    this.#decay = options.decay ?? (() => true);
  }

  /** One update of every parameter that has a gradient; `lr` overrides the base rate (schedules). */
  apply(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lr = this.lr): void {
    this.step += 1;
    const t = this.step;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      let m = this.#m.get(name);
      let v = this.#v.get(name);
      if (!m || !v) {
        // tidy frees the zeros; variables survive it.
        m = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
        v = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
        this.#m.set(name, m);
        this.#v.set(name, v);
      }
      const decay = this.#decay(name) ? this.weightDecay : 0;
      tf.tidy(() => {
        const decayed = decay === 0 ? p : tf.mul(p, 1 - lr * decay);
        const mNew = tf.add(m, tf.mul(tf.sub(g, m), 1 - b1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.mul(g, g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(vNew), bc2Sqrt), this.eps);
        m.assign(mNew);
        v.assign(vNew);
        p.assign(tf.sub(decayed, tf.mul(tf.div(mNew, denom), stepSize)));
      });
    }
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
  }
}

/**
 * Scales gradients so their global L2 norm is at most `maxNorm` (coefficient maxNorm/(norm+1e-6),
 * capped at 1, as torch). Returns the norm before clipping and the new gradients; the caller
 * disposes both maps' tensors.
 */
export function clipGradNorm(
  grads: ReadonlyMap<string, tf.Tensor>,
  maxNorm: number,
): { norm: number; grads: Map<string, tf.Tensor> } {
  const norm = globalNorm(grads);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, coef === 1 ? g.clone() : tf.mul(g, coef));
  return { norm, grads: out };
}

/** sqrt(Σ ‖g‖²) over all gradients, as one number. */
export function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): number {
  const sq = tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))));
  const value = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  return value;
}
