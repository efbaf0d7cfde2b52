/**
 * Generation speed: 128 new tokens (greedy) from a 16-token prompt with the genesis model's shape
 * (context widened to 256), with the KV cache and without it (every step recomputes the whole
 * sequence). Target: the cache is >= 5× faster.
 */
import type { BenchModule } from "@deepshard/protocol";
import { initBackend } from "../src/backend.ts";
import { BYTE_TOKENIZER_CLASS, gpt2ConfigJson } from "../src/config.ts";
import { generate } from "../src/generate.ts";
import { GENESIS_DEFAULTS } from "../src/genesis.ts";
import { createModel } from "../src/model.ts";

const bench: BenchModule = async (ctx) => {
  const backend = await initBackend();
  const g = GENESIS_DEFAULTS;
  const model = createModel(
    gpt2ConfigJson({
      vocabSize: 258,
      nPositions: 256,
      nEmbd: g.nEmbd,
      nLayer: g.nLayer,
      nHead: g.nHead,
      tokenizerClass: BYTE_TOKENIZER_CLASS,
    }),
    { seed: 1 },
  );
  const prompt = Array.from({ length: 16 }, (_, i) => 65 + i);
  const newTokens = 128;
  const rate = async (useCache: boolean) => {
    await generate(model, prompt, { greedy: true, maxNewTokens: 8, stopTokens: [], useCache });
    const t0 = performance.now();
    const out = await generate(model, prompt, {
      greedy: true,
      maxNewTokens: newTokens,
      stopTokens: [],
      useCache,
    });
    return out.tokens.length / ((performance.now() - t0) / 1000);
  };
  const cached = await rate(true);
  const plain = await rate(false);
  model.dispose();
  const ratio = cached / plain;
  ctx.log(
    `generate: ${backend.name}, ${newTokens} tokens, cache ${cached.toFixed(0)} tok/s, none ${plain.toFixed(0)} tok/s`,
  );
  return [
    { package: "tensor", metric: "generate 128 tokens, KV cache", value: cached, unit: "tokens/s" },
    { package: "tensor", metric: "generate 128 tokens, no cache", value: plain, unit: "tokens/s" },
    {
      package: "tensor",
      metric: "generate: cache / no cache",
      value: ratio,
      unit: "×",
      target: ">= 5",
      pass: ratio >= 5,
    },
  ];
};

export default bench;
