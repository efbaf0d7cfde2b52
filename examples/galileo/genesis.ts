/**
 * The genesis model of 1609: a byte-level GPT-2 of the genesis recipe's shape, pretrained on the
 * geocentric corpus (world.ts) instead of the tensor package's generic one, on the deterministic
 * wasm backend, written as a model folder a devnet starts from.
 */
import { join } from "node:path";
import {
  BYTE_EOS,
  BYTE_PAD,
  BYTE_TOKENIZER_CLASS,
  BYTE_VOCAB,
  ByteTokenizer,
  type CausalLM,
  createModel,
  gpt2ConfigJson,
  initBackend,
  logLikelihoods,
  Rng,
  saveModel,
  train,
} from "@deepshard/tensor";
import { geocentricCorpus } from "./world.ts";

export interface GeocentricRecipe {
  steps: number;
  batchSize: number;
  context: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  lr: number;
  seed: string;
}

export const GEOCENTRIC_RECIPE: GeocentricRecipe = {
  steps: 300,
  batchSize: 16,
  context: 64,
  nEmbd: 32,
  nLayer: 1,
  nHead: 2,
  lr: 1e-2,
  seed: "galileo-1609",
};

/** Trains the geocentric genesis model into `<dir>/genesis-1609` and returns that folder. */
export async function writeGeocentricGenesis(dir: string, recipe: GeocentricRecipe): Promise<string> {
  await initBackend({ backend: "wasm" });
  const config = gpt2ConfigJson({
    vocabSize: BYTE_VOCAB,
    nPositions: recipe.context,
    nEmbd: recipe.nEmbd,
    nLayer: recipe.nLayer,
    nHead: recipe.nHead,
    bosTokenId: BYTE_EOS,
    eosTokenId: BYTE_EOS,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  config.pad_token_id = BYTE_PAD;
  const tok = new ByteTokenizer();
  // One stream of documents separated by EOS; each row is a random window of it (as trainGenesis).
  const stream: number[] = [];
  for (const doc of geocentricCorpus(1500, `${recipe.seed}/corpus`))
    stream.push(...tok.encode(doc), BYTE_EOS);
  const rng = new Rng(`${recipe.seed}/windows`);
  const rows = Array.from({ length: recipe.steps * recipe.batchSize }, () => {
    const start = rng.int(stream.length - recipe.context - 1);
    return { tokens: stream.slice(start, start + recipe.context + 1) };
  });
  const model = createModel(config, { seed: `${recipe.seed}/init` });
  try {
    await train(model, rows, {
      batchSize: recipe.batchSize,
      epochs: 1,
      shuffle: false,
      lr: recipe.lr,
      warmupSteps: Math.min(10, Math.floor(recipe.steps / 10)),
      schedule: "cosine",
      weightDecay: 0.01,
    });
    const out = join(dir, "genesis-1609");
    await saveModel(model, out, { genesis_recipe: JSON.stringify({ ...recipe, corpus: "geocentric" }) });
    return out;
  } finally {
    model.dispose();
  }
}

/** Log-likelihood (nats, summed over bytes, EOS included) the model gives each sentence. */
export function sentenceLogLikelihoods(model: CausalLM, sentences: readonly string[]): number[] {
  const tok = new ByteTokenizer();
  return logLikelihoods(
    model,
    sentences.map((s) => [BYTE_EOS, ...tok.encode(s), BYTE_EOS]),
  ).map((w) => w.logLikelihood);
}
