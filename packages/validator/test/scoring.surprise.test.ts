import {
  BYTE_TOKENIZER_CLASS,
  ByteTokenizer,
  type CausalLM,
  createModel,
  gpt2ConfigJson,
  initBackend,
  train,
} from "@deepshard/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { corpusSurprise, MinHashIndex, modelSurprise, scoreSubmission } from "../src/index.ts";

const KNOWN = "the sun goes around the earth. the sun goes around the earth. ";
const NEW = "Venus shows phases like the Moon, so it must circle the Sun.";
let model: CausalLM;
const tokenizer = new ByteTokenizer();

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  const config = gpt2ConfigJson({
    vocabSize: 258,
    nPositions: 64,
    nEmbd: 32,
    nLayer: 1,
    nHead: 2,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  model = createModel(config, { seed: 1 });
  await train(model, [{ tokens: tokenizer.encode(KNOWN) }], { steps: 60, lr: 3e-3, batchSize: 1, seed: 1 });
});
afterAll(() => model.dispose());

describe("novelty with the canonical model's surprise", () => {
  it("a text the model has learnt is less surprising, and so less novel, than a new one", async () => {
    const surprise = modelSurprise(model, tokenizer);
    expect(surprise(KNOWN)).toBeLessThan(surprise(NEW));
    const ctx = {
      corpus: new MinHashIndex<string>(),
      surprise,
      referenceSurprise: corpusSurprise(model, tokenizer, [NEW]),
    };
    const known = await scoreSubmission(new TextEncoder().encode(KNOWN), ctx);
    const fresh = await scoreSubmission(new TextEncoder().encode(NEW), ctx);
    expect(fresh.scores.novelty).toBeGreaterThan(known.scores.novelty);
  });
});
