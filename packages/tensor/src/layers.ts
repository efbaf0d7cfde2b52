/**
 * Building blocks shared by the GPT-2 and Llama models: norms, activations, embedding lookup,
 * causal attention and the key/value cache used during generation. All functions are pure tfjs ops
 * and expect to run inside the caller's `tf.tidy`.
 */
import * as tf from "@tensorflow/tfjs-core";

/** Per-layer keys and values of the tokens seen so far, [batch, kvHeads, length, headDim] each. */
export class KVCache {
  readonly keys: (tf.Tensor4D | undefined)[];
  readonly values: (tf.Tensor4D | undefined)[];
  /** Tokens already in the cache (the position of the next token). */
  length = 0;

  constructor(numLayers: number) {
    this.keys = new Array(numLayers).fill(undefined);
    this.values = new Array(numLayers).fill(undefined);
  }

  /** Appends this step's keys/values for `layer` and returns the full ones (kept across tidy scopes). */
  append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    const fullK = tf.keep(oldK ? tf.concat([oldK, k], 2) : k.clone());
    const fullV = tf.keep(oldV ? tf.concat([oldV, v], 2) : v.clone());
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer] = fullK;
    this.values[layer] = fullV;
    return [fullK, fullV];
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(undefined);
    this.values.fill(undefined);
    this.length = 0;
  }
}

export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
}

/**
 * GPT-2's gelu_new, 0.5·x·(1 + tanh(u)) with u = √(2/π)(x + 0.044715x³), written as x·σ(2u), which is
 * the same function: wasm's Sigmoid is vectorised while its Tanh is a scalar loop ~5× slower.
 */
export function geluNew(x: tf.Tensor): tf.Tensor {
  const cube = tf.mul(tf.mul(x, x), x);
  return tf.mul(x, tf.sigmoid(tf.mul(tf.add(x, tf.mul(cube, 0.044715)), 2 * Math.sqrt(2 / Math.PI))));
}

/** The exact (erf) GELU. */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * Rows of `table` [vocab, dim] for `ids` (int32, any shape) → [...ids.shape, dim].
 * The gradient of `gather` needs the UnsortedSegmentSum kernel; where the backend lacks it, a one-hot
 * matmul gives the same rows (1·w + 0·rest is exact) and a gradient every backend can compute.
 * (The one-hot is built as int32 and cast: wasm's OneHot kernel ignores a float32 dtype.)
 */
export function embed(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  const flat = tf.reshape(ids, [-1]) as tf.Tensor1D;
  const dim = table.shape[1];
  const rows =
    tf.getKernel("UnsortedSegmentSum", tf.getBackend()) !== undefined
      ? tf.gather(table, flat)
      : mm(tf.cast(tf.oneHot(flat, table.shape[0]), "float32") as tf.Tensor2D, table);
  return tf.reshape(rows, [...ids.shape, dim]);
}

/*
 * The wasm backend runs a matmul through XNNPACK only for unbatched operands without transpose
 * flags (20–40 GFLOP/s); anything else takes a scalar loop at 0.5–2 GFLOP/s. tfjs's own matMul
 * gradient uses the transpose flags, so these wrappers transpose explicitly instead (a transpose is
 * a cheap copy) in both directions.
 */

/**
 * 2-D transpose in two cache-friendly passes (within 32×32 tiles, then whole tiles): wasm's
 * Transpose walks a large matrix with a cache-missing stride and is 2–3× slower in one pass.
 */
export function transpose2d(x: tf.Tensor2D): tf.Tensor2D {
  const [r, c] = x.shape;
  const b = 32;
  if (r % b !== 0 || c % b !== 0 || r * c < 1 << 16) return tf.transpose(x);
  const tiles = tf.transpose(tf.reshape(x, [r / b, b, c / b, b]), [0, 2, 3, 1]);
  return tf.reshape(tf.transpose(tiles, [1, 2, 0, 3]), [c, r]);
}

/** a [M, K] @ b [K, N], forward and backward on the fast path. */
export const mm = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, transpose2d(sb)), tf.matMul(transpose2d(sa), dy as tf.Tensor2D)];
    },
  };
}) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  perm[perm.length - 2] = perm.length - 1;
  perm[perm.length - 1] = perm.length - 2;
  return tf.transpose(x, perm);
}

/**
 * Batched a [..., M, K] @ bᵀ for b [..., N, K]: the scalar batched loop reads both operands along
 * K contiguously only in this form, so the gradients are arranged into it too.
 */
export const bmmT = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b, false, true),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [tf.matMul(dy, swapLast(sb), false, true), tf.matMul(swapLast(dy), swapLast(sa), false, true)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/**
 * y [M, N] + b [N]. tfjs reduces the bias gradient with Sum over axis 0, which on wasm transposes
 * dy first; ones[1, M] @ dy is the same sum on the fast matmul path.
 */
const addBias = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [y, b] = args as [tf.Tensor2D, tf.Tensor1D];
  return {
    value: tf.add(y, b),
    gradFunc: (dy: tf.Tensor) => [
      dy,
      tf.reshape(tf.matMul(tf.ones([1, dy.shape[0]!]), dy as tf.Tensor2D), [-1]),
    ],
  };
}) as (y: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;

/** x [..., in] @ w [in, out] (+ b) over the last axis. */
export function dense(x: tf.Tensor, w: tf.Tensor2D, b?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const y = mm(tf.reshape(x, [-1, shape[shape.length - 1]!]) as tf.Tensor2D, w);
  const out = b ? addBias(y, b as tf.Tensor1D) : y;
  return tf.reshape(out, [...shape.slice(0, -1), w.shape[1]]);
}

/** x [..., in] @ wᵀ (+ b) for a torch Linear weight w [out, in]. */
export function linear(x: tf.Tensor, w: tf.Tensor2D, b?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const x2 = tf.reshape(x, [-1, shape[shape.length - 1]!]) as tf.Tensor2D;
  // Few rows (generation): (w @ xᵀ)ᵀ streams w as it is; transposing w would copy it, and XNNPACK
  // would repack it, for every token. Many rows (training): transposing w is the smaller copy.
  const y = x2.shape[0] <= 64 ? tf.transpose(mm(w, tf.transpose(x2))) : mm(x2, transpose2d(w));
  const out = b ? addBias(y, b as tf.Tensor1D) : y;
  return tf.reshape(out, [...shape.slice(0, -1), w.shape[0]]);
}

/** [B, T, H*D] → [B, H, T, D]. */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor4D {
  const [b, t, c] = x.shape as [number, number, number];
  return tf.transpose(tf.reshape(x, [b, t, heads, c / heads]), [0, 2, 1, 3]);
}

/** [B, H, T, D] → [B, T, H*D]. */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
  const [b, h, t, d] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, t, h * d]);
}

/** Additive causal mask [T, past+T]: query i (at position past+i) sees keys 0..past+i. */
export function causalMask(queries: number, past: number): tf.Tensor2D {
  const keys = past + queries;
  const data = new Float32Array(queries * keys);
  for (let i = 0; i < queries; i++) data.fill(-1e9, i * keys + past + i + 1, (i + 1) * keys);
  return tf.tensor2d(data, [queries, keys]);
}

/**
 * Scaled dot-product causal attention. q [B, H, T, D], k/v [B, KV, past+T, D] with H a multiple of KV
 * (grouped-query attention: query head h reads key/value head floor(h / (H/KV))).
 */
export function causalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, past: number): tf.Tensor4D {
  const [b, heads, t, d] = q.shape;
  const kvHeads = k.shape[1];
  const group = heads / kvHeads;
  let kk: tf.Tensor4D = k;
  let vv: tf.Tensor4D = v;
  if (group > 1) {
    // Rank-4 tile: tfjs has no tile gradient above rank 4.
    const len = k.shape[2];
    const repeat = (x: tf.Tensor4D) =>
      tf.reshape(tf.tile(tf.reshape(x, [b, kvHeads, 1, len * d]), [1, 1, group, 1]), [
        b,
        heads,
        len,
        d,
      ]) as tf.Tensor4D;
    kk = repeat(k);
    vv = repeat(v);
  }
  let scores = tf.mul(bmmT(q, kk), 1 / Math.sqrt(d));
  if (t > 1) scores = tf.add(scores, causalMask(t, past));
  return bmmT(tf.softmax(scores), swapLast(vv)) as tf.Tensor4D;
}
