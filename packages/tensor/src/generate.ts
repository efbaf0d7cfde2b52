/**
 * Autoregressive generation with a key/value cache: greedy, temperature, top-k and top-p sampling
 * from a seeded PRNG (the same seed gives the same text on every machine), stop tokens, a token
 * limit, and streaming through an async iterator or a callback.
 */
import * as tf from "@tensorflow/tfjs-core";
import { ModelError } from "./config.ts";
import type { CausalLM } from "./model.ts";
import { Rng } from "./random.ts";
import type { Tokenizer } from "./tokenizer.ts";

export interface SamplingOptions {
  /** 0 (or greedy: true) picks the most likely token; default 1. */
  temperature?: number;
  greedy?: boolean;
  /** Sample among the k most likely tokens only. */
  topK?: number;
  /** Sample among the smallest set of most likely tokens whose probability reaches p. */
  topP?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Default 64. */
  maxNewTokens?: number;
  /** Seeds sampling (default 0). */
  seed?: number | string;
  /** Generation ends after one of these (default: the config's eos_token_id); the stop token is returned. */
  stopTokens?: readonly number[];
  /** Reuse past keys/values (default true); false recomputes the whole sequence for every token. */
  useCache?: boolean;
  onToken?: (id: number, index: number) => void;
  signal?: AbortSignal;
}

export type FinishReason = "stop" | "length";

export interface GenerateResult {
  tokens: number[];
  finishReason: FinishReason;
}

/** Picks the next token from one row of logits. */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
  const n = logits.length;
  const temperature = options.temperature ?? 1;
  if (options.greedy || temperature === 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  if (!(temperature > 0)) throw new ModelError("INPUT_INVALID", "temperature must be ≥ 0");
  let order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (options.topK !== undefined && options.topK > 0) order = order.slice(0, options.topK);
  const max = logits[order[0]!]!;
  let probs = order.map((i) => Math.exp((logits[i]! - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  const topP = options.topP;
  if (topP !== undefined && topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length && cum < topP * total) cum += probs[keep++]!;
    order = order.slice(0, Math.max(1, keep));
    probs = probs.slice(0, order.length);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let u = rng.next() * total;
  for (let i = 0; i < order.length; i++) {
    u -= probs[i]!;
    if (u < 0) return order[i]!;
  }
  return order[order.length - 1]!;
}

/** Streams new token ids; the generator's return value says why it stopped. */
export async function* generateTokens(
  model: CausalLM,
  prompt: ArrayLike<number>,
  options: GenerateOptions = {},
): AsyncGenerator<number, GenerateResult> {
  const c = model.config;
  if (prompt.length === 0) throw new ModelError("INPUT_INVALID", "the prompt needs at least one token");
  for (const id of Array.from(prompt)) {
    if (!(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) {
      throw new ModelError("INPUT_INVALID", `token id ${id} is outside the vocabulary`, {
        meta: { vocab: c.vocabSize },
      });
    }
  }
  if (prompt.length > c.maxPositions) {
    throw new ModelError(
      "CONTEXT_OVERFLOW",
      `prompt of ${prompt.length} tokens exceeds the context of ${c.maxPositions}`,
    );
  }
  const maxNew = options.maxNewTokens ?? 64;
  const stops = new Set(options.stopTokens ?? c.eosTokenIds);
  const rng = new Rng(options.seed ?? 0);
  const cache = options.useCache === false ? undefined : model.newCache();
  const sequence = Array.from(prompt);
  const tokens: number[] = [];
  try {
    let feed = sequence.slice();
    for (;;) {
      if (tokens.length >= maxNew || sequence.length >= c.maxPositions)
        return { tokens, finishReason: "length" };
      options.signal?.throwIfAborted();
      const row = tf.tidy(() => {
        const logits = model.forward(tf.tensor2d(feed, [1, feed.length], "int32"), cache);
        return tf.reshape(tf.slice(logits, [0, feed.length - 1, 0], [1, 1, -1]), [-1]);
      });
      const values = row.dataSync();
      row.dispose();
      const id = sampleToken(values, options, rng);
      tokens.push(id);
      sequence.push(id);
      options.onToken?.(id, tokens.length - 1);
      yield id;
      if (stops.has(id)) return { tokens, finishReason: "stop" };
      feed = cache ? [id] : sequence;
    }
  } finally {
    cache?.dispose();
  }
}

/** Runs generation to the end and returns every new token. */
export async function generate(
  model: CausalLM,
  prompt: ArrayLike<number>,
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  const it = generateTokens(model, prompt, options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}

/** Streams text pieces for a text prompt; stop tokens end the stream without being printed. */
export async function* generateText(
  model: CausalLM,
  tokenizer: Tokenizer,
  prompt: string,
  options: GenerateOptions = {},
): AsyncGenerator<string, GenerateResult> {
  const stops =
    options.stopTokens ??
    (model.config.eosTokenIds.length > 0 ? model.config.eosTokenIds : [tokenizer.eosTokenId]);
  const decode = tokenizer.streamDecoder();
  const it = generateTokens(model, tokenizer.encode(prompt), { ...options, stopTokens: stops });
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    if (stops.includes(r.value)) continue;
    const piece = decode(r.value);
    if (piece) yield piece;
  }
}
