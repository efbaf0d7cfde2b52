import {
  createModel,
  gpt2ConfigJson,
  initBackend,
  modelFromWeights,
  parseConfig,
  Rng,
  readWeights,
  type TrainOptions,
  train,
  trainRange,
  weightsDigest,
} from "@deepshard/tensor";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type Checkpoint,
  chooseSegment,
  replaySegment,
  type Transcript,
  trainWithTranscript,
} from "../src/replay.ts";

const config = parseConfig(gpt2ConfigJson({ vocabSize: 40, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 }));
const rng = new Rng("replay");
const examples = Array.from({ length: 12 }, () => ({
  tokens: Array.from({ length: 16 }, () => rng.int(40)),
}));
const options: TrainOptions = {
  epochs: 2,
  batchSize: 3,
  lr: 5e-3,
  warmupSteps: 1,
  schedule: "cosine",
  seed: 3,
};

let baseWeights: Map<string, Float32Array>;
let baseDigest: string;
let transcript: Transcript;
let checkpoints: Checkpoint[];
let submittedDigest: string;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  const base = createModel(config, { seed: "base" });
  baseWeights = readWeights(base);
  baseDigest = weightsDigest(base);
  checkpoints = [];
  transcript = await trainWithTranscript(base, examples, options, 3, (c) => checkpoints.push(c));
  submittedDigest = weightsDigest(base);
  base.dispose();
});

const replay = (segment: number, overrides: Partial<Parameters<typeof replaySegment>[0]> = {}) =>
  replaySegment({
    config,
    examples,
    options,
    transcript,
    baseDigest,
    submittedDigest,
    segment,
    checkpoint: checkpoints[segment]!,
    ...overrides,
  });

describe("training transcripts", () => {
  it("train as train() does, bit for bit", async () => {
    const plain = modelFromWeights(config, baseWeights);
    await train(plain, examples, options);
    expect(weightsDigest(plain)).toBe(submittedDigest);
    plain.dispose();
    expect(transcript.steps).toBe(8);
    expect(transcript.entries.map((e) => e.step)).toEqual([0, 3, 6, 8]);
  });

  it("replay every honest segment bit for bit; the beacon picks one", async () => {
    for (let s = 0; s < 3; s++) expect(await replay(s)).toMatchObject({ ok: true, segment: s });
    const s = chooseSegment("block-hash", transcript);
    expect(chooseSegment("block-hash", transcript)).toBe(s);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(s).toBeLessThan(3);
  });

  it("catch a faked segment, a swapped checkpoint, other weights and a malformed transcript", async () => {
    // A lazy trainer: honest for 3 steps, then weights nudged by hand instead of training, with a
    // transcript that claims the fake states.
    const model = modelFromWeights(config, checkpoints[1]!.weights);
    const rngFake = new Rng("fake");
    const fakeWeights = readWeights(model);
    for (const a of fakeWeights.values()) for (let i = 0; i < a.length; i++) a[i]! += 1e-3 * rngFake.normal();
    const fake = modelFromWeights(model.config, fakeWeights);
    const forged: Transcript = {
      ...transcript,
      entries: transcript.entries.map((e, i) => (i >= 2 ? { ...e, weights: weightsDigest(fake) } : e)),
    };
    const fakeDigest = weightsDigest(fake);
    model.dispose();
    fake.dispose();
    expect(await replay(0, { transcript: forged, submittedDigest: fakeDigest })).toMatchObject({ ok: true });
    expect(await replay(1, { transcript: forged, submittedDigest: fakeDigest })).toMatchObject({
      ok: false,
      failure: "segment_mismatch",
    });
    expect(await replay(1, { checkpoint: checkpoints[2]! })).toMatchObject({
      ok: false,
      failure: "checkpoint_mismatch",
    });
    expect(await replay(1, { submittedDigest: fakeDigest })).toMatchObject({
      ok: false,
      failure: "final_mismatch",
    });
    expect(await replay(0, { baseDigest: fakeDigest })).toMatchObject({
      ok: false,
      failure: "base_mismatch",
    });
    expect(await replay(0, { transcript: { ...transcript, steps: 9 } })).toMatchObject({
      failure: "transcript_malformed",
    });
    expect(await replay(3)).toMatchObject({ failure: "transcript_malformed" });
  });

  it("resume from a checkpoint's plain arrays", async () => {
    const c = checkpoints[2]!;
    const model = modelFromWeights(config, c.weights);
    await trainRange(model, examples, options, { start: c.step, state: c.optimizer });
    expect(weightsDigest(model)).toBe(submittedDigest);
    model.dispose();
  });
});
