/**
 * The benchmark's genesis model: a small byte-level GPT-2 pretrained on the synthetic corpus, cached
 * under the OS temp directory by the hash of its recipe so reruns skip pretraining.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BYTE_TOKENIZER_CLASS,
  type CausalLM,
  createModel,
  gpt2ConfigJson,
  loadModel,
  saveModel,
  train,
} from "@deepshard/tensor";
import { sequences } from "./corpus.ts";

export interface GenesisRecipe {
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** Tokens per sequence (the model's context). */
  length: number;
  sequences: number;
  steps: number;
  batchSize: number;
  lr: number;
  seed: string;
}

export const GENESIS: GenesisRecipe = {
  nEmbd: 64,
  nLayer: 2,
  nHead: 4,
  length: 48,
  sequences: 1024,
  steps: 300,
  batchSize: 16,
  lr: 3e-3,
  seed: "deepshard-validator-genesis-v1",
};

export function recipeHash(recipe: GenesisRecipe): string {
  return createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 16);
}

/** Loads the cached genesis model for `recipe`, pretraining and caching it first if needed. */
export async function genesisModel(
  recipe: GenesisRecipe = GENESIS,
  log: (line: string) => void = () => {},
): Promise<CausalLM> {
  const dir = join(tmpdir(), "deepshard-validator-cache", `genesis-${recipeHash(recipe)}`);
  if (existsSync(join(dir, "model.safetensors"))) return loadModel(dir);
  const config = gpt2ConfigJson({
    vocabSize: 258,
    nPositions: recipe.length,
    nEmbd: recipe.nEmbd,
    nLayer: recipe.nLayer,
    nHead: recipe.nHead,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  const model = createModel(config, { seed: recipe.seed });
  const data = sequences(
    ["trade", "weather", "kitchen"],
    recipe.sequences,
    recipe.length,
    `${recipe.seed}/data`,
  );
  const t0 = performance.now();
  const result = await train(
    model,
    data.map((tokens) => ({ tokens })),
    {
      steps: recipe.steps,
      batchSize: recipe.batchSize,
      lr: recipe.lr,
      warmupSteps: 20,
      schedule: "cosine",
      seed: recipe.seed,
    },
  );
  log(
    `genesis: ${recipe.steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s, loss ${result.losses[0]!.toFixed(3)} → ${result.losses.at(-1)!.toFixed(3)}`,
  );
  // Written aside and renamed, so a concurrent run never loads a half-written cache.
  const temp = `${dir}.tmp-${process.pid}`;
  await saveModel(model, temp, { recipe: recipeHash(recipe) });
  await rename(temp, dir).catch(() => rm(temp, { recursive: true, force: true }));
  return model;
}
