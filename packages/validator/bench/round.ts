/**
 * One simulated training round for the adversary benchmark: the batch, honest trainers with their
 * own seeds, and every class of dishonest trainer, all starting from the genesis model.
 */
import {
  type CausalLM,
  modelFromWeights,
  Rng,
  readWeights,
  type TrainOptions,
  train,
} from "@deepshard/tensor";
import { genesisSequences, type Kind, sequences, triggerProbes } from "./corpus.ts";

export interface RoundRecipe {
  /** Examples in the approved batch. */
  examples: number;
  /** Tokens per example (≤ the genesis model's context). */
  length: number;
  train: TrainOptions;
  seed: string;
}

export const ROUND: RoundRecipe = {
  examples: 64,
  length: 64,
  train: { epochs: 4, batchSize: 8, lr: 2e-3, warmupSteps: 2, schedule: "constant" },
  seed: "round-1",
};

export const ADVERSARIES = [
  "base-unchanged",
  "skip-25",
  "skip-50",
  "noise",
  "other-data",
  "poison-5",
  "backdoor",
  "copy",
  "nudge",
] as const;
export type Adversary = (typeof ADVERSARIES)[number];

export interface RoundData {
  batch: number[][];
  /** Pools the validator draws probes from after the commit deadline. */
  pools: { batch: number[][]; heldOut: number[][]; generic: number[][]; trigger: number[][] };
}

export function roundData(recipe: RoundRecipe = ROUND): RoundData {
  const batch = sequences("harbor", recipe.examples, recipe.length, `${recipe.seed}/batch`);
  return {
    batch,
    pools: {
      batch,
      heldOut: sequences("harbor", 64, recipe.length, `${recipe.seed}/held-out`),
      // Mostly what the genesis model knows, a quarter of the batch's kind.
      generic: [
        ...genesisSequences(48, recipe.length, `${recipe.seed}/generic`),
        ...sequences("harbor", 16, recipe.length, `${recipe.seed}/generic-harbor`),
      ],
      trigger: triggerProbes(64, recipe.length, `${recipe.seed}/trigger`),
    },
  };
}

type Weights = Map<string, Float32Array>;

/** Fine-tunes a copy of the base on `data` with the round's recipe and the trainer's own seed. */
export async function trainCopy(
  base: CausalLM,
  data: number[][],
  recipe: RoundRecipe,
  seed: string,
  baseWeights: Weights = readWeights(base),
): Promise<CausalLM> {
  const model = modelFromWeights(base.config, baseWeights);
  await train(
    model,
    data.map((tokens) => ({ tokens })),
    { ...recipe.train, seed },
  );
  return model;
}

function l2(w: Weights): number {
  let s = 0;
  for (const a of w.values()) for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

function combine(a: Weights, b: Weights, fa: number, fb: number): Weights {
  const out: Weights = new Map();
  for (const [name, x] of a) {
    const y = b.get(name)!;
    const z = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) z[i] = fa * x[i]! + fb * y[i]!;
    out.set(name, z);
  }
  return out;
}

/** Gaussian noise shaped like `like` (each tensor's noise has the norm of that tensor of `like`) scaled to total norm `norm`. */
function noiseLike(like: Weights, norm: number, rng: Rng): Weights {
  const out: Weights = new Map();
  for (const [name, x] of like) {
    let nx = 0;
    for (let i = 0; i < x.length; i++) nx += x[i]! * x[i]!;
    const z = new Float32Array(x.length);
    let nz = 0;
    for (let i = 0; i < z.length; i++) {
      z[i] = rng.normal();
      nz += z[i]! * z[i]!;
    }
    const scale = Math.sqrt(nx) / Math.sqrt(nz || 1);
    for (let i = 0; i < z.length; i++) z[i]! *= scale;
    out.set(name, z);
  }
  const total = l2(out);
  for (const z of out.values()) for (let i = 0; i < z.length; i++) z[i]! *= norm / total;
  return out;
}

/** What an adversary needs to know: honest submissions it may copy or imitate (as colluders would). */
export interface AdversaryContext {
  base: CausalLM;
  baseWeights: Weights;
  data: RoundData;
  recipe: RoundRecipe;
  /** Weights of honest models (a colluder's or an imitator's knowledge). */
  honest: Weights[];
}

function replace(
  batch: number[][],
  fraction: number,
  kind: Kind,
  recipe: RoundRecipe,
  seed: string,
): number[][] {
  const rng = new Rng(seed);
  const out = batch.slice();
  const count = Math.max(1, Math.round(fraction * batch.length));
  const poison = sequences(kind, count, recipe.length, `${seed}/${kind}`);
  const slots = rng.shuffle(out.map((_, i) => i)).slice(0, count);
  for (const [k, slot] of slots.entries()) out[slot] = poison[k]!;
  return out;
}

/** Builds instance `index` of an adversary class. */
export async function adversary(kind: Adversary, index: number, ctx: AdversaryContext): Promise<CausalLM> {
  const { base, baseWeights, data, recipe, honest } = ctx;
  const seed = `${recipe.seed}/${kind}/${index}`;
  const rng = new Rng(seed);
  const honestDelta = (i: number) => combine(honest[i % honest.length]!, baseWeights, 1, -1);
  switch (kind) {
    case "base-unchanged":
      return modelFromWeights(base.config, baseWeights);
    case "skip-25":
    case "skip-50": {
      // Trains on part of the batch only, saving that share of the compute.
      const keep = kind === "skip-25" ? 0.75 : 0.5;
      const subset = rng.shuffle(data.batch.slice()).slice(0, Math.round(keep * data.batch.length));
      return trainCopy(base, subset, recipe, seed, baseWeights);
    }
    case "noise": {
      // No training: noise with an honest update's size and per-tensor shape.
      const delta = honestDelta(index);
      return modelFromWeights(base.config, combine(baseWeights, noiseLike(delta, l2(delta), rng), 1, 1));
    }
    case "other-data":
      return trainCopy(
        base,
        sequences("school", data.batch.length, recipe.length, seed),
        recipe,
        seed,
        baseWeights,
      );
    case "poison-5":
      return trainCopy(base, replace(data.batch, 0.05, "poison", recipe, seed), recipe, seed, baseWeights);
    case "backdoor":
      return trainCopy(base, replace(data.batch, 0.08, "backdoor", recipe, seed), recipe, seed, baseWeights);
    case "copy": {
      // A colluder resubmits an honest trainer's weights plus noise of 20% of the distance between two
      // honest models: more noise would push it out of the honest band.
      const victim = honest[index % honest.length]!;
      const size = 0.2 * l2(combine(honest[0]!, honest[1 % honest.length]!, 1, -1));
      return modelFromWeights(base.config, combine(victim, noiseLike(honestDelta(index), size, rng), 1, 1));
    }
    case "nudge": {
      // An honest model moved toward a poisoned one, by half the typical distance between honest models.
      const ownModel = await trainCopy(base, data.batch, recipe, `${seed}/own`, baseWeights);
      const own = readWeights(ownModel);
      ownModel.dispose();
      const poisoned = await trainCopy(
        base,
        replace(data.batch, 0.25, "poison", recipe, seed),
        recipe,
        seed,
        baseWeights,
      );
      const p = readWeights(poisoned);
      poisoned.dispose();
      const spread = l2(combine(honest[0]!, honest[1 % honest.length]!, 1, -1));
      const dir = combine(p, own, 1, -1);
      const alpha = Math.min(1, (0.5 * spread) / l2(dir));
      return modelFromWeights(base.config, combine(own, dir, 1, alpha));
    }
  }
}
