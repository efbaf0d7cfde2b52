/**
 * Pipeline stages: a model cut into contiguous ranges of blocks, so that nodes holding different
 * layers can run one forward pass together (as Petals does). The first stage embeds token ids, the
 * last applies the final norm and the head; between nodes travel hidden states [batch, steps, hidden].
 * The full models are the stage that spans every layer.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./config.ts";
import { causalAttention, KVCache } from "./layers.ts";

/** Blocks `firstLayer..lastLayer`, both inclusive (as `tensorsForLayers` counts them). */
export interface LayerRange {
  firstLayer: number;
  lastLayer: number;
}

export interface ModelStage {
  readonly config: ModelConfig;
  readonly firstLayer: number;
  readonly lastLayer: number;
  /** Takes token ids (layer 0 is in the range), otherwise hidden states. */
  readonly isFirst: boolean;
  /** Returns logits (the last layer is in the range), otherwise hidden states. */
  readonly isLast: boolean;
  /** This stage's weights by Hugging Face name: only the tensors its range needs. */
  readonly params: Map<string, tf.Variable>;
  /**
   * Token ids [B, T] (int32) for the first stage, hidden states [B, T, hidden] (float32) for the
   * others → hidden states, or logits [B, T, vocab] from the last stage. With a cache (this
   * stage's own, from `newCache`), the input continues the cached sequence.
   */
  forward(input: tf.Tensor, cache?: KVCache): tf.Tensor3D;
  /** A key/value cache for this stage's blocks. */
  newCache(): KVCache;
  /** Frees the weights. */
  dispose(): void;
}

/** Whether blocks first..last (inclusive) are a non-empty range of a model with `numLayers` blocks. */
export function isLayerRange(first: number, last: number, numLayers: number): boolean {
  return (
    Number.isSafeInteger(first) &&
    Number.isSafeInteger(last) &&
    0 <= first &&
    first <= last &&
    last < numLayers
  );
}

/** Throws ModelError LAYER_RANGE unless `range` is a non-empty range of a model with `numLayers` blocks. */
export function checkLayerRange(range: LayerRange, numLayers: number): void {
  const { firstLayer, lastLayer } = range;
  if (!isLayerRange(firstLayer, lastLayer, numLayers)) {
    throw new ModelError(
      "LAYER_RANGE",
      `layer range ${firstLayer}..${lastLayer} is not within the model's layers 0..${numLayers - 1}`,
      { meta: { firstLayer, lastLayer, numLayers } },
    );
  }
}

/** Attention of one block over the cached and new keys/values: q [B, H, T, D], k/v [B, KV, T, D]. */
export type Attend = (layer: number, q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D) => tf.Tensor4D;

/**
 * What GPT-2 and Llama share: input checks, the context limit, the per-stage KV cache and the
 * order embed → blocks → head, each part run only when the stage holds it.
 */
export abstract class TransformerStage<C extends ModelConfig> implements ModelStage {
  readonly config: C;
  readonly params: Map<string, tf.Variable>;
  readonly firstLayer: number;
  readonly lastLayer: number;
  readonly isFirst: boolean;
  readonly isLast: boolean;

  constructor(
    config: C,
    params: Map<string, tf.Variable>,
    range: LayerRange = { firstLayer: 0, lastLayer: config.numLayers - 1 },
  ) {
    checkLayerRange(range, config.numLayers);
    this.config = config;
    this.params = params;
    this.firstLayer = range.firstLayer;
    this.lastLayer = range.lastLayer;
    this.isFirst = range.firstLayer === 0;
    this.isLast = range.lastLayer === config.numLayers - 1;
  }

  /** Token ids at positions past.. → hidden states. */
  protected abstract embedTokens(ids: tf.Tensor2D, past: number): tf.Tensor;
  /** Blocks firstLayer..lastLayer over hidden states at positions past.. */
  protected abstract blocks(h: tf.Tensor, attend: Attend, past: number): tf.Tensor;
  /** Final norm and head: hidden states → logits. */
  protected abstract head(h: tf.Tensor): tf.Tensor;

  protected w<R extends tf.Rank>(name: string): tf.Tensor<R> {
    return this.params.get(name) as unknown as tf.Tensor<R>;
  }

  newCache(): KVCache {
    return new KVCache(this.lastLayer - this.firstLayer + 1);
  }

  forward(input: tf.Tensor, cache?: KVCache): tf.Tensor3D {
    const c = this.config;
    this.#checkInput(input);
    if (cache && cache.keys.length !== this.lastLayer - this.firstLayer + 1) {
      throw new ModelError("INPUT_INVALID", "the cache was made for a different layer range");
    }
    const steps = input.shape[1]!;
    const past = cache?.length ?? 0;
    if (past + steps > c.maxPositions) {
      throw new ModelError(
        "CONTEXT_OVERFLOW",
        `sequence of ${past + steps} tokens exceeds the model's context of ${c.maxPositions}`,
        { meta: { tokens: past + steps, maxPositions: c.maxPositions } },
      );
    }
    const out = tf.tidy(() => {
      let h = this.isFirst ? this.embedTokens(input as tf.Tensor2D, past) : input;
      const attend: Attend = (layer, q, k, v) => {
        const [keys, values] = cache ? cache.append(layer - this.firstLayer, k, v) : [k, v];
        return causalAttention(q, keys, values, past);
      };
      h = this.blocks(h, attend, past);
      return (this.isLast ? this.head(h) : h) as tf.Tensor3D;
    });
    if (cache) cache.length += steps;
    return out;
  }

  #checkInput(input: tf.Tensor): void {
    if (this.isFirst) {
      if (input.rank !== 2 || input.dtype !== "int32") {
        throw new ModelError("INPUT_INVALID", "a first stage takes token ids [batch, steps] (int32)", {
          meta: { shape: input.shape, dtype: input.dtype },
        });
      }
    } else if (input.rank !== 3 || input.dtype !== "float32" || input.shape[2] !== this.config.hiddenSize) {
      throw new ModelError(
        "INPUT_INVALID",
        `a stage from layer ${this.firstLayer} takes hidden states [batch, steps, ${this.config.hiddenSize}] (float32)`,
        { meta: { shape: input.shape, dtype: input.dtype } },
      );
    }
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}

// ---- Hidden states on the wire ----

/** Hidden states between two stages, as plain data. */
export interface HiddenStates {
  /** Row-major [batch, steps, hidden]. */
  data: Float32Array;
  shape: [number, number, number];
}

const MAGIC = [0x44, 0x53, 0x48, 0x31]; // "DSH1": Deepshard hidden states, format 1 (F32)
const HEADER_BYTES = 16;

/**
 * Bytes for the wire: "DSH1", batch, steps and hidden as u32 little-endian, then the values as
 * little-endian float32, exactly (so a chain of stages on several nodes computes what one node does).
 */
export function encodeHiddenStates(h: HiddenStates | tf.Tensor3D): Uint8Array {
  const { data, shape } =
    h instanceof tf.Tensor ? { data: h.dataSync() as Float32Array, shape: h.shape } : (h as HiddenStates);
  if (shape.length !== 3 || data.length !== shape[0] * shape[1] * shape[2]) {
    throw new ModelError("INPUT_INVALID", `hidden states of ${data.length} values do not fill [${shape}]`);
  }
  const out = new Uint8Array(HEADER_BYTES + data.byteLength);
  const view = new DataView(out.buffer);
  out.set(MAGIC);
  for (const [i, n] of shape.entries()) view.setUint32(4 + 4 * i, n, true);
  for (let i = 0; i < data.length; i++) view.setFloat32(HEADER_BYTES + 4 * i, data[i]!, true);
  return out;
}

/** Parses `encodeHiddenStates` bytes; anything malformed is a ModelError INPUT_INVALID. */
export function decodeHiddenStates(bytes: Uint8Array): HiddenStates {
  const bad = (why: string): never => {
    throw new ModelError("INPUT_INVALID", `invalid hidden states: ${why}`, {
      meta: { bytes: bytes.byteLength },
    });
  };
  if (bytes.byteLength < HEADER_BYTES) bad("shorter than the header");
  if (MAGIC.some((b, i) => bytes[i] !== b)) bad("not DSH1 hidden states");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: [number, number, number] = [
    view.getUint32(4, true),
    view.getUint32(8, true),
    view.getUint32(12, true),
  ];
  if (shape.some((n) => n === 0)) bad(`empty shape [${shape}]`);
  // The product is compared against the bytes actually received, so a hostile shape allocates nothing.
  if (shape[0] * shape[1] * shape[2] * 4 !== bytes.byteLength - HEADER_BYTES) {
    bad(`shape [${shape}] does not match ${bytes.byteLength - HEADER_BYTES} data bytes`);
  }
  const data = new Float32Array(shape[0] * shape[1] * shape[2]);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(HEADER_BYTES + 4 * i, true);
  return { data, shape };
}
