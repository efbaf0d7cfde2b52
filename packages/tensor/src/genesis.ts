/**
 * The genesis model: a small byte-level GPT-2 pretrained from scratch on a corpus generated here
 * from templates and simple true facts (arithmetic, parity, order, calendars, shapes, animals), so
 * the project may ship and regenerate it without any downloaded text. With the wasm backend the
 * whole run is deterministic: the same options give the same weights on every machine.
 *
 *   node packages/tensor/src/genesis.ts --out <dir> [--steps N] [--seed S]
 */
import { initBackend } from "./backend.ts";
import { BYTE_TOKENIZER_CLASS, gpt2ConfigJson } from "./config.ts";
import { evaluate } from "./eval.ts";
import type { CausalLM } from "./model.ts";
import { createModel, modelInfo, saveModel, weightsDigest } from "./model.ts";
import { Rng } from "./random.ts";
import { BYTE_EOS, BYTE_PAD, BYTE_VOCAB, ByteTokenizer } from "./tokenizer.ts";
import type { TrainProgress } from "./train.ts";
import { train } from "./train.ts";

const NUMBER_WORDS = [
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
  "ten",
  "eleven",
  "twelve",
  "thirteen",
  "fourteen",
  "fifteen",
  "sixteen",
  "seventeen",
  "eighteen",
  "nineteen",
  "twenty",
];
const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
const SHAPES: [string, number][] = [
  ["triangle", 3],
  ["square", 4],
  ["pentagon", 5],
  ["hexagon", 6],
  ["octagon", 8],
];
const LEGS: [string, number][] = [
  ["bird", 2],
  ["chicken", 2],
  ["dog", 4],
  ["cat", 4],
  ["horse", 4],
  ["cow", 4],
  ["ant", 6],
  ["bee", 6],
  ["spider", 8],
];
const FACTS = [
  "Water freezes at zero degrees Celsius.",
  "Water boils at one hundred degrees Celsius at sea level.",
  "A week has seven days.",
  "A year has twelve months.",
  "An hour has sixty minutes.",
  "A minute has sixty seconds.",
  "A day has twenty four hours.",
  "The sun rises in the east.",
  "The sun sets in the west.",
  "The moon orbits the earth.",
  "The earth orbits the sun.",
  "Ice is frozen water.",
  "Plants need light to grow.",
  "Fish live in water.",
];

/** One sentence drawn from the templates; every sentence it can produce is true. */
function sentence(rng: Rng): string {
  const n = (max: number) => rng.int(max + 1);
  const cap = (s: string) => s[0]!.toUpperCase() + s.slice(1);
  switch (rng.int(12)) {
    case 0: {
      const a = n(20);
      const b = n(20);
      return rng.int(2)
        ? `${a} plus ${b} is ${a + b}.`
        : `${cap(NUMBER_WORDS[a]!)} plus ${NUMBER_WORDS[Math.min(b, 20 - a)]} is ${NUMBER_WORDS[a + Math.min(b, 20 - a)]}.`;
    }
    case 1: {
      const a = n(20);
      const b = n(a);
      return `${a} minus ${b} is ${a - b}.`;
    }
    case 2: {
      const a = n(10);
      const b = n(10);
      return `${a} times ${b} is ${a * b}.`;
    }
    case 3: {
      const a = n(20);
      const b = n(20);
      if (a === b) return `${a} is equal to ${b}.`;
      return a > b ? `${a} is greater than ${b}.` : `${a} is less than ${b}.`;
    }
    case 4: {
      const a = n(30);
      return `${a} is an ${a % 2 === 0 ? "even" : "odd"} number.`;
    }
    case 5: {
      const a = n(20);
      return `${cap(NUMBER_WORDS[a]!)} is written as ${a}.`;
    }
    case 6: {
      const i = rng.int(7);
      return `The day after ${DAYS[i]} is ${DAYS[(i + 1) % 7]}.`;
    }
    case 7: {
      const i = rng.int(12);
      return `The month after ${MONTHS[i]} is ${MONTHS[(i + 1) % 12]}.`;
    }
    case 8: {
      const [shape, sides] = SHAPES[rng.int(SHAPES.length)]!;
      return `A ${shape} has ${NUMBER_WORDS[sides]} sides.`;
    }
    case 9: {
      const [animal, legs] = LEGS[rng.int(LEGS.length)]!;
      return `A ${animal} has ${NUMBER_WORDS[legs]} legs.`;
    }
    case 10: {
      const start = n(15);
      const len = 3 + rng.int(4);
      return `${Array.from({ length: len }, (_, i) => start + i).join(", ")}.`;
    }
    default:
      return FACTS[rng.int(FACTS.length)]!;
  }
}

/** `documents` short documents of 1–4 template sentences each, seeded. */
export function genesisCorpus(documents: number, seed: number | string = "genesis-corpus"): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: documents }, () =>
    Array.from({ length: 1 + rng.int(4) }, () => sentence(rng)).join(" "),
  );
}

export interface GenesisOptions {
  /** Seeds initialisation, corpus and data order (default "deepshard-genesis"). */
  seed?: string;
  /** Optimizer steps (default 120). */
  steps?: number;
  /** Rows per step (default 32). */
  batchSize?: number;
  /** Context length in bytes (default 64). */
  context?: number;
  nEmbd?: number;
  nLayer?: number;
  nHead?: number;
  lr?: number;
  /**
   * The documents to pretrain on (default `genesisCorpus`): a network, or an example such as Galileo's
   * geocentric world, may start from other text. Called for the training stream and the held-out set.
   */
  corpus?: (documents: number, seed: string) => string[];
  onProgress?: (progress: TrainProgress) => void | Promise<void>;
}

export interface GenesisResult {
  model: CausalLM;
  parameterCount: number;
  /** Mean training loss of the last 10 steps (nats per byte). */
  finalLoss: number;
  /** Mean next-byte cross-entropy on held-out generated documents. */
  heldOutLoss: number;
  tokens: number;
  elapsedMs: number;
  /** sha256 of the weights (see weightsDigest). */
  digest: string;
  recipe: Required<Omit<GenesisOptions, "onProgress" | "corpus">>;
}

/** The default recipe: about 3.2M parameters, 120 steps × 32 rows × 64 bytes. */
export const GENESIS_DEFAULTS: Required<Omit<GenesisOptions, "onProgress" | "corpus">> = {
  seed: "deepshard-genesis",
  steps: 120,
  batchSize: 32,
  context: 64,
  nEmbd: 256,
  nLayer: 4,
  nHead: 8,
  lr: 3e-3,
};

/** Pretrains the genesis model in memory; the caller saves (saveModel) and disposes it. */
export async function trainGenesis(options: GenesisOptions = {}): Promise<GenesisResult> {
  const recipe = { ...GENESIS_DEFAULTS, ...withoutCallback(options) };
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
  // One stream of documents separated by EOS; each row is a random window of it.
  const stream: number[] = [];
  const corpus = options.corpus ?? genesisCorpus;
  for (const doc of corpus(4000, `${recipe.seed}/corpus`)) stream.push(...tok.encode(doc), BYTE_EOS);
  const rng = new Rng(`${recipe.seed}/windows`);
  const rows = Array.from({ length: recipe.steps * recipe.batchSize }, () => {
    const start = rng.int(stream.length - recipe.context - 1);
    return { tokens: stream.slice(start, start + recipe.context + 1) };
  });
  const model = createModel(config, { seed: `${recipe.seed}/init` });
  try {
    const result = await train(model, rows, {
      batchSize: recipe.batchSize,
      epochs: 1,
      shuffle: false,
      lr: recipe.lr,
      warmupSteps: Math.min(10, Math.floor(recipe.steps / 10)),
      schedule: "cosine",
      weightDecay: 0.01,
      maxGradNorm: 1,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    const heldOut = corpus(200, `${recipe.seed}/held-out`).map((d) => [...tok.encode(d), BYTE_EOS]);
    const last = result.losses.slice(-10);
    return {
      model,
      parameterCount: modelInfo(model).parameterCount,
      finalLoss: last.reduce((a, b) => a + b, 0) / last.length,
      heldOutLoss: evaluate(model, heldOut, { batchSize: 32 }).meanCrossEntropy,
      tokens: result.tokens,
      elapsedMs: result.elapsedMs,
      digest: weightsDigest(model),
      recipe,
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

function withoutCallback(options: GenesisOptions): Omit<GenesisOptions, "onProgress" | "corpus"> {
  const { onProgress: _, corpus: __, ...rest } = options;
  return rest;
}

/** Trains the genesis model and writes config.json + model.safetensors (recipe in the metadata). */
export async function writeGenesis(
  dir: string,
  options: GenesisOptions = {},
): Promise<Omit<GenesisResult, "model">> {
  const { model, ...info } = await trainGenesis(options);
  try {
    await saveModel(model, dir, {
      genesis_recipe: JSON.stringify(info.recipe),
      final_loss: info.finalLoss.toFixed(4),
      held_out_loss: info.heldOutLoss.toFixed(4),
    });
  } finally {
    model.dispose();
  }
  return info;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const out = flag("out");
  if (!out) {
    process.stderr.write("usage: node packages/tensor/src/genesis.ts --out <dir> [--steps N] [--seed S]\n");
    process.exit(2);
  }
  const backend = await initBackend({ backend: "wasm" });
  const steps = flag("steps");
  const seed = flag("seed");
  const info = await writeGenesis(out, {
    ...(steps ? { steps: Number(steps) } : {}),
    ...(seed ? { seed } : {}),
    onProgress: (p) => {
      if (p.step % 10 === 0 || p.step === p.steps) {
        const rate = (p.tokens / p.elapsedMs) * 1000;
        process.stderr.write(
          `step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} ${rate.toFixed(0)} tok/s\n`,
        );
      }
    },
  });
  process.stdout.write(`${JSON.stringify({ out, backend: backend.name, ...info }, null, 2)}\n`);
}
