/**
 * Bit-exact training on the single-threaded wasm backend. The golden digest pins one tiny run: it
 * must come out the same on every machine (WebAssembly float arithmetic is IEEE-exact and does not
 * depend on the CPU). It is defined for the wasm backend only; other backends may round differently.
 * If it changes, something altered the arithmetic (tfjs version, op order, init, data order).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { BYTE_TOKENIZER_CLASS, gpt2ConfigJson } from "../src/config.ts";
import { createModel, weightsDigest } from "../src/model.ts";
import { ByteTokenizer } from "../src/tokenizer.ts";
import { train } from "../src/train.ts";

const GOLDEN = "fc93215ca89393770629613e94109941e6e9e2a0ca353c481ea2e950d3089162";

const texts = [
  "The river runs to the sea.",
  "Seven is a prime number.",
  "Water boils at one hundred degrees Celsius at sea level.",
  "A square has four equal sides.",
  "The moon orbits the earth.",
];

async function tinyRun(): Promise<string> {
  const tok = new ByteTokenizer();
  const config = gpt2ConfigJson({
    vocabSize: 258,
    nPositions: 32,
    nEmbd: 32,
    nLayer: 2,
    nHead: 4,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  const model = createModel(config, { seed: "determinism" });
  await train(
    model,
    texts.map((t, i) => ({ tokens: tok.encode(t), weight: 1 + (i % 2) })),
    { epochs: 3, batchSize: 2, lr: 3e-3, seed: 11, warmupSteps: 2, schedule: "cosine", maxGradNorm: 0.5 },
  );
  const digest = weightsDigest(model);
  model.dispose();
  return digest;
}

beforeAll(async () => {
  const report = await initBackend({ backend: "wasm" });
  expect(report.deterministic).toBe(true);
});

describe("deterministic training (wasm, one thread)", () => {
  it("two runs with the same inputs and seed give bit-identical weights", async () => {
    expect(await tinyRun()).toBe(await tinyRun());
  });

  it("matches the golden digest pinned for this run", async () => {
    expect(await tinyRun()).toBe(GOLDEN);
  });
});
