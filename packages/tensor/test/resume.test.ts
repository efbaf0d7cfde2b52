import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { gpt2ConfigJson } from "../src/config.ts";
import { createModel, weightsDigest } from "../src/model.ts";
import { modelFromWeights, readWeights } from "../src/probe.ts";
import { Rng } from "../src/random.ts";
import { optimizerDigest, runSteps, trainRange } from "../src/resume.ts";
import { type TrainOptions, train } from "../src/train.ts";

const config = gpt2ConfigJson({ vocabSize: 40, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 });
const rng = new Rng("resume");
const examples = Array.from({ length: 10 }, (_, i) => ({
  tokens: Array.from({ length: 12 + (i % 4) }, () => rng.int(40)),
  weight: 1 + (i % 3),
}));
// Cosine schedule with warmup, clipping, several epochs: every piece of `train` that depends on the step.
const options: TrainOptions = {
  epochs: 3,
  batchSize: 3,
  lr: 5e-3,
  warmupSteps: 2,
  schedule: "cosine",
  maxGradNorm: 0.5,
  seed: 7,
};

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
});

describe("trainRange", () => {
  it("gives train()'s weights bit for bit, whole or cut anywhere and resumed from the exported state", async () => {
    const reference = createModel(config, { seed: 1 });
    const initial = readWeights(reference);
    await train(reference, examples, options);
    const expected = weightsDigest(reference);
    reference.dispose();

    const steps = runSteps(createModel(config), examples, options);
    expect(steps).toBe(12);
    const whole = modelFromWeights(reference.config, initial);
    const full = await trainRange(whole, examples, options, { start: 0 });
    expect(weightsDigest(whole)).toBe(expected);
    expect(full.state.step).toBe(steps);
    whole.dispose();

    for (const cut of [1, 5, 11]) {
      const model = modelFromWeights(reference.config, initial);
      const first = await trainRange(model, examples, options, { start: 0, end: cut });
      // Resume in a fresh model from plain arrays, as a validator does from a trainer's checkpoint.
      const resumed = modelFromWeights(reference.config, readWeights(model));
      model.dispose();
      const rest = await trainRange(resumed, examples, options, { start: cut, state: first.state });
      expect(weightsDigest(resumed), `cut at ${cut}`).toBe(expected);
      expect(optimizerDigest(rest.state)).toBe(optimizerDigest(full.state));
      resumed.dispose();
    }
  });

  it("refuses a resume without the matching state and ranges outside the run", async () => {
    const model = createModel(config);
    await expect(trainRange(model, examples, options, { start: 3 })).rejects.toThrow(/optimizer state/);
    await expect(trainRange(model, examples, options, { start: 13 })).rejects.toThrow(/not within/);
    const { state } = await trainRange(model, examples, options, { start: 0, end: 1 });
    const bad = { ...state, m: new Map([...state.m].map(([k, x]) => [k, x.subarray(0, 1)])) };
    await expect(trainRange(model, examples, options, { start: 1, state: bad })).rejects.toThrow(
      /optimizer state for/,
    );
    model.dispose();
  });
});
