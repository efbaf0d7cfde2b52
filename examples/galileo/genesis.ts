/**
 * The genesis model of 1609: a byte-level GPT-2 of the genesis recipe's shape, pretrained on the
 * geocentric corpus (world.ts) instead of the tensor package's generic one, on the deterministic
 * wasm backend, written as a model folder a devnet starts from.
 */
import { join } from "node:path";
import {
  BYTE_EOS,
  ByteTokenizer,
  type CausalLM,
  initBackend,
  logLikelihoods,
  saveModel,
  trainGenesis,
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
  const out = join(dir, "genesis-1609");
  const { model } = await trainGenesis({ ...recipe, corpus: geocentricCorpus });
  try {
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
