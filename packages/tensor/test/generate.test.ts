import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { BYTE_TOKENIZER_CLASS, gpt2ConfigJson } from "../src/config.ts";
import { generate, generateText, generateTokens, sampleToken } from "../src/generate.ts";
import type { CausalLM } from "../src/model.ts";
import { createModel } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { BYTE_EOS, ByteTokenizer } from "../src/tokenizer.ts";

const gptConfig = gpt2ConfigJson({
  vocabSize: 258,
  nPositions: 48,
  nEmbd: 32,
  nLayer: 2,
  nHead: 4,
  eosTokenId: BYTE_EOS,
  tokenizerClass: BYTE_TOKENIZER_CLASS,
});
const llamaConfig = {
  model_type: "llama",
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
};

let gpt: CausalLM;
let llama: CausalLM;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  // std 0.02 weights give nearly flat distributions; larger ones make greedy choices well separated.
  gpt = createModel(gptConfig, { seed: 5 });
  llama = createModel(llamaConfig, { seed: 6 });
  for (const m of [gpt, llama]) {
    for (const v of m.params.values()) if (v.shape.length === 2) tf.tidy(() => v.assign(tf.mul(v, 20)));
  }
});

afterAll(() => {
  gpt.dispose();
  llama.dispose();
});

describe("generation", () => {
  for (const name of ["gpt2", "llama"] as const) {
    it(`${name}: greedy output with the KV cache equals greedy output without it`, async () => {
      const model = name === "gpt2" ? gpt : llama;
      const prompt = [1, 2, 3, 4, 5];
      const before = tf.memory().numTensors;
      const cached = await generate(model, prompt, { greedy: true, maxNewTokens: 20, stopTokens: [] });
      const plain = await generate(model, prompt, {
        greedy: true,
        maxNewTokens: 20,
        stopTokens: [],
        useCache: false,
      });
      expect(cached.tokens).toHaveLength(20);
      expect(cached.tokens).toEqual(plain.tokens);
      expect(cached.finishReason).toBe("length");
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it("seeded sampling replays exactly; another seed gives another text", async () => {
    const opts = { temperature: 1.0, topK: 50, topP: 0.95, maxNewTokens: 24, stopTokens: [] };
    const a = await generate(gpt, [10, 20], { ...opts, seed: 7 });
    const b = await generate(gpt, [10, 20], { ...opts, seed: 7 });
    const c = await generate(gpt, [10, 20], { ...opts, seed: 8 });
    expect(a.tokens).toEqual(b.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it("top-k 1 and temperature 0 are greedy", async () => {
    const greedy = await generate(gpt, [3], { greedy: true, maxNewTokens: 8, stopTokens: [] });
    expect((await generate(gpt, [3], { topK: 1, seed: 1, maxNewTokens: 8, stopTokens: [] })).tokens).toEqual(
      greedy.tokens,
    );
    expect((await generate(gpt, [3], { temperature: 0, maxNewTokens: 8, stopTokens: [] })).tokens).toEqual(
      greedy.tokens,
    );
  });

  it("stops at a stop token (returned, finishReason stop) and at the context length", async () => {
    const greedy = await generate(gpt, [3], { greedy: true, maxNewTokens: 8, stopTokens: [] });
    const stopAt = greedy.tokens[2]!;
    const stopped = await generate(gpt, [3], { greedy: true, maxNewTokens: 8, stopTokens: [stopAt] });
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.tokens.at(-1)).toBe(stopAt);
    expect(stopped.tokens).toEqual(greedy.tokens.slice(0, stopped.tokens.length));
    const long = await generate(gpt, new Array(40).fill(7), {
      greedy: true,
      maxNewTokens: 100,
      stopTokens: [],
    });
    expect(long.tokens).toHaveLength(8);
    expect(long.finishReason).toBe("length");
  });

  it("streams through an async iterator and a callback", async () => {
    const seen: [number, number][] = [];
    const streamed: number[] = [];
    const it = generateTokens(gpt, [1, 2], {
      seed: 3,
      maxNewTokens: 6,
      stopTokens: [],
      onToken: (id, i) => seen.push([id, i]),
    });
    for await (const id of it) streamed.push(id);
    const whole = await generate(gpt, [1, 2], { seed: 3, maxNewTokens: 6, stopTokens: [] });
    expect(streamed).toEqual(whole.tokens);
    expect(seen).toEqual(whole.tokens.map((id, i) => [id, i]));
  });

  it("streams text for a text prompt", async () => {
    const tok = new ByteTokenizer();
    let text = "";
    for await (const piece of generateText(gpt, tok, "hi", { seed: 2, maxNewTokens: 10 })) text += piece;
    const ids = await generate(gpt, tok.encode("hi"), { seed: 2, maxNewTokens: 10, stopTokens: [BYTE_EOS] });
    expect(text).toBe(tok.decode(ids.tokens));
  });

  it("rejects bad prompts with typed errors", async () => {
    await expect(generate(gpt, [])).rejects.toMatchObject({ code: "INPUT_INVALID" });
    await expect(generate(gpt, [258])).rejects.toMatchObject({ code: "INPUT_INVALID" });
    await expect(generate(gpt, new Array(49).fill(1))).rejects.toMatchObject({ code: "CONTEXT_OVERFLOW" });
  });
});

describe("sampleToken", () => {
  it("follows the tempered distribution", () => {
    const rng = new Rng(1);
    const counts = [0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleToken([0, Math.log(3), -Infinity], {}, rng)]!++;
    expect(counts[2]).toBe(0);
    expect(counts[1]! / n).toBeGreaterThan(0.73);
    expect(counts[1]! / n).toBeLessThan(0.77);
    // Temperature 2 flattens 1:3 to 1:√3.
    let hot = 0;
    for (let i = 0; i < n; i++) hot += sampleToken([0, Math.log(3)], { temperature: 2 }, rng);
    expect(hot / n).toBeCloseTo(Math.sqrt(3) / (1 + Math.sqrt(3)), 1);
  });

  it("top-k and top-p keep only the head of the distribution", () => {
    const rng = new Rng(2);
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
    const seenK = new Set<number>();
    const seenP = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      seenK.add(sampleToken(logits, { topK: 2 }, rng));
      seenP.add(sampleToken(logits, { topP: 0.75 }, rng));
    }
    expect([...seenK].sort()).toEqual([0, 1]);
    expect([...seenP].sort()).toEqual([0, 1]);
    expect(sampleToken(logits, { topP: 0.01 }, rng)).toBe(0);
  });
});
