import { copyFile, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { ModelError } from "../src/config.ts";
import { generate } from "../src/generate.ts";
import { KVCache } from "../src/layers.ts";
import type { CausalLM } from "../src/model.ts";
import {
  createModel,
  loadConfig,
  loadModel,
  loadModelStage,
  saveModel,
  stageParameterSpecs,
} from "../src/model.ts";
import { type Checkpoint, INDEX_FILE, openCheckpoint, writeCheckpoint } from "../src/safetensors.ts";
import { ChunkedWeights, chunkLocation, chunksForLayers } from "../src/shard.ts";
import type { LayerRange, ModelStage } from "../src/stage.ts";
import { decodeHiddenStates, encodeHiddenStates } from "../src/stage.ts";

const FIXTURE = join(import.meta.dirname, "fixtures", "gpt2-tiny");
let dir: string;

/** Model directories under test: the transformers GPT-2 fixture and tiny random models. */
const cases: { name: string; id: string; dir: () => string; layers: number }[] = [
  { name: "GPT-2 fixture (2 layers)", id: "gpt2-tiny", dir: () => FIXTURE, layers: 2 },
  { name: "GPT-2 random (3 layers)", id: "gpt2-3", dir: () => join(dir, "gpt2-3"), layers: 3 },
  {
    name: "Llama, GQA, separate lm_head (4 layers)",
    id: "llama-4",
    dir: () => join(dir, "llama-4"),
    layers: 4,
  },
  {
    name: "Llama, tied embeddings (3 layers)",
    id: "llama-tied-3",
    dir: () => join(dir, "llama-tied-3"),
    layers: 3,
  },
];

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  dir = await mkdtemp(join(tmpdir(), "deepshard-stage-"));
  const gpt2 = createModel(
    { model_type: "gpt2", vocab_size: 97, n_positions: 32, n_embd: 32, n_layer: 3, n_head: 4 },
    { seed: 1 },
  );
  const llama = {
    model_type: "llama",
    vocab_size: 89,
    hidden_size: 32,
    intermediate_size: 48,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-6,
  };
  const llama4 = createModel({ ...llama, num_hidden_layers: 4, tie_word_embeddings: false }, { seed: 2 });
  const tied = createModel({ ...llama, num_hidden_layers: 3, tie_word_embeddings: true }, { seed: 3 });
  // Random weights of std 0.02 give nearly flat logits; larger ones make greedy choices clear-cut.
  for (const m of [gpt2, llama4, tied]) for (const v of m.params.values()) v.assign(tf.mul(v, 20));
  await saveModel(gpt2, join(dir, "gpt2-3"));
  await saveModel(llama4, join(dir, "llama-4"));
  await saveModel(tied, join(dir, "llama-tied-3"));
  for (const m of [gpt2, llama4, tied]) m.dispose();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Cuts 0..n-1 at `cuts` into consecutive ranges. */
function split(n: number, cuts: number[]): LayerRange[] {
  const bounds = [0, ...cuts, n];
  return bounds.slice(1).map((end, i) => ({ firstLayer: bounds[i]!, lastLayer: end - 1 }));
}

async function loadStages(modelDir: string, ranges: LayerRange[]): Promise<ModelStage[]> {
  return Promise.all(ranges.map((r) => loadModelStage(modelDir, r)));
}

/**
 * Runs ids [B, T] through a chain of stages (each with its own cache when given), optionally
 * passing the hidden states between stages as wire bytes, and returns the logits' values.
 */
function runChain(stages: ModelStage[], ids: number[][], caches?: KVCache[], wire = false): Float32Array {
  let x: tf.Tensor = tf.tensor2d(ids, undefined, "int32");
  for (const [i, stage] of stages.entries()) {
    const y = stage.forward(x, caches?.[i]);
    x.dispose();
    if (wire && !stage.isLast) {
      const h = decodeHiddenStates(encodeHiddenStates(y));
      y.dispose();
      x = tf.tensor3d(h.data, h.shape);
    } else {
      x = y;
    }
  }
  const out = x.dataSync() as Float32Array;
  x.dispose();
  return out;
}

/** Writes config.json and the tensors `names` of `source` as a checkpoint in `to`. */
async function copyModel(
  from: string,
  source: Checkpoint,
  names: string[],
  to: string,
  maxShardBytes?: number,
): Promise<string[]> {
  await mkdir(to, { recursive: true });
  await copyFile(join(from, "config.json"), join(to, "config.json"));
  const entries = names.map((name) => ({
    name,
    dtype: "F32" as const,
    shape: source.info(name).shape,
    data: () => source.readF32(name),
  }));
  return writeCheckpoint(to, entries, maxShardBytes === undefined ? {} : { maxShardBytes });
}

function fullLogits(model: CausalLM, ids: number[][]): Float32Array {
  const t = tf.tidy(() => model.forward(tf.tensor2d(ids, undefined, "int32")));
  const out = t.dataSync() as Float32Array;
  t.dispose();
  return out;
}

function tokenIds(vocab: number, batch: number, steps: number, seed: number): number[][] {
  return Array.from({ length: batch }, (_, b) =>
    Array.from({ length: steps }, (_, t) => (seed * 31 + b * 17 + t * 7) % vocab),
  );
}

describe.each(cases)("$name", ({ id, dir: modelDir, layers }) => {
  let full: CausalLM;

  beforeAll(async () => {
    full = await loadModel(modelDir());
    expect(full.config.numLayers).toBe(layers);
  });

  afterAll(() => full.dispose());

  it("a stage spanning every layer is the full model", async () => {
    const [stage] = await loadStages(modelDir(), split(layers, []));
    try {
      expect(stage!.isFirst && stage!.isLast).toBe(true);
      expect([...stage!.params.keys()]).toEqual([...full.params.keys()]);
      const ids = tokenIds(full.config.vocabSize, 2, 9, 1);
      expect(runChain([stage!], ids)).toEqual(fullLogits(full, ids));
    } finally {
      stage!.dispose();
    }
  });

  it("two stages [0..k) and [k..n) give the full model's logits, at every cut", async () => {
    const ids = tokenIds(full.config.vocabSize, 2, 11, 2);
    const expected = fullLogits(full, ids);
    for (let k = 1; k < layers; k++) {
      const stages = await loadStages(modelDir(), split(layers, [k]));
      try {
        expect(stages.map((s) => [s.isFirst, s.isLast])).toEqual([
          [true, false],
          [false, true],
        ]);
        expect(maxAbsDiff(runChain(stages, ids), expected)).toBeLessThanOrEqual(1e-5);
        expect(maxAbsDiff(runChain(stages, ids, undefined, true), expected)).toBeLessThanOrEqual(1e-5);
      } finally {
        for (const s of stages) s.dispose();
      }
    }
  });

  it("three stages, hidden states crossing the wire encoding", async () => {
    const ranges = layers >= 3 ? split(layers, [1, layers - 1]) : split(layers, [1]);
    const stages = await loadStages(modelDir(), ranges);
    try {
      const ids = tokenIds(full.config.vocabSize, 1, 13, 3);
      expect(maxAbsDiff(runChain(stages, ids, undefined, true), fullLogits(full, ids))).toBeLessThanOrEqual(
        1e-5,
      );
    } finally {
      for (const s of stages) s.dispose();
    }
  });

  it("incremental decoding with a KV cache per stage equals the full model's greedy generation", async () => {
    const stages = await loadStages(modelDir(), split(layers, layers >= 3 ? [1, 2] : [1]));
    const caches = stages.map((s) => s.newCache());
    try {
      const prompt = tokenIds(full.config.vocabSize, 1, 5, 4)[0]!;
      const maxNewTokens = 12;
      // Without a cache the full model recomputes every position: independent of the cache code.
      const expected = await generate(full, prompt, {
        greedy: true,
        maxNewTokens,
        stopTokens: [],
        useCache: false,
      });
      const vocab = full.config.vocabSize;
      const tokens: number[] = [];
      let feed = prompt;
      while (tokens.length < maxNewTokens) {
        const logits = runChain(stages, [feed], caches, true);
        const last = logits.subarray(logits.length - vocab);
        let best = 0;
        for (let v = 1; v < vocab; v++) if (last[v]! > last[best]!) best = v;
        tokens.push(best);
        feed = [best];
      }
      expect(tokens).toEqual(expected.tokens);
      for (const c of caches) expect(c.length).toBe(prompt.length + maxNewTokens - 1);
    } finally {
      for (const c of caches) c.dispose();
      for (const s of stages) s.dispose();
    }
  });

  it("a stage loads only its tensors: a checkpoint holding nothing else is enough", async () => {
    const config = await loadConfig(modelDir());
    const ids = tokenIds(config.vocabSize, 1, 7, 5);
    const expected = fullLogits(full, ids);
    const ranges = split(layers, layers >= 3 ? [1, layers - 1] : [1]);
    const source = await openCheckpoint(modelDir());
    const stages: ModelStage[] = [];
    try {
      for (const [i, range] of ranges.entries()) {
        const names = stageParameterSpecs(config, range).map((s) => s.name);
        const part = join(dir, `${id}-part-${i}`);
        await copyModel(modelDir(), source, names, part);
        // The copy really lacks the rest: the full model cannot load from it.
        await expect(loadModel(part)).rejects.toMatchObject({ code: "WEIGHTS_MISSING" });
        const stage = await loadModelStage(part, range);
        stages.push(stage);
        expect([...stage.params.keys()]).toEqual(names);
        const blocks = new Set(
          names.flatMap((n) => /\.(?:h|layers)\.(\d+)\./.exec(n)?.[1] ?? []).map(Number),
        );
        expect([...blocks].sort()).toEqual(
          Array.from({ length: range.lastLayer - range.firstLayer + 1 }, (_, j) => range.firstLayer + j),
        );
        expect(names.some((n) => /wpe|embed_tokens/.test(n) && !/wte/.test(n))).toBe(
          range.firstLayer === 0 ||
            (config.modelType === "llama" && config.tieWordEmbeddings && stage.isLast),
        );
      }
      expect(maxAbsDiff(runChain(stages, ids, undefined, true), expected)).toBeLessThanOrEqual(1e-5);
    } finally {
      await source.close();
      for (const s of stages) s.dispose();
    }
  });

  it("a stage runs from only the chunks chunksForLayers names (every other byte garbage)", async () => {
    const chunked = await ChunkedWeights.open(modelDir(), { chunkSize: 1024 });
    const source = await openCheckpoint(modelDir());
    const ranges = split(layers, [layers - 1]);
    const stages: ModelStage[] = [];
    try {
      for (const [i, range] of ranges.entries()) {
        const holey = join(dir, `${id}-holey-${i}`);
        await mkdir(holey, { recursive: true });
        await copyFile(join(modelDir(), "config.json"), join(holey, "config.json"));
        const chunks = chunksForLayers(chunked.manifest, source, range.firstLayer, range.lastLayer);
        expect(chunks.length).toBeLessThan(chunked.manifest.chunkCount);
        for (const f of chunked.manifest.files) {
          // 0xFF bytes read as NaN: any weight taken from outside the chunks would poison the logits.
          await writeFile(join(holey, f.name), new Uint8Array(f.size).fill(0xff));
        }
        for (const c of chunks) {
          const { file, offset } = chunkLocation(chunked.manifest, c);
          const handle = await open(join(holey, file), "r+");
          await handle.write(await chunked.readChunk(c), 0, undefined, offset);
          await handle.close();
        }
        expect((await stat(join(holey, "model.safetensors"))).size).toBe(chunked.manifest.totalSize);
        const stage = await loadModelStage(holey, range);
        stages.push(stage);
        // Every weight the stage holds came from its chunks (anything else would hold NaN).
        for (const [name, v] of stage.params) {
          expect(
            tf.tidy(() => tf.all(tf.isFinite(v)).dataSync()[0]),
            name,
          ).toBe(1);
        }
      }
      const ids = tokenIds(full.config.vocabSize, 2, 6, 6);
      expect(maxAbsDiff(runChain(stages, ids), fullLogits(full, ids))).toBeLessThanOrEqual(1e-5);
    } finally {
      await source.close();
      for (const s of stages) s.dispose();
    }
  });
});

describe("sharded checkpoints", () => {
  it("a stage opens only the shard files holding its tensors; the others may be absent", async () => {
    const source = join(dir, "llama-4");
    const sharded = join(dir, "llama-4-sharded");
    const config = await loadConfig(source);
    const ckpt = await openCheckpoint(source);
    try {
      const files = await copyModel(source, ckpt, [...ckpt.tensors.keys()], sharded, 16_000);
      expect(files.length).toBeGreaterThan(8);
    } finally {
      await ckpt.close();
    }
    const full = await loadModel(sharded);
    const ranges = split(4, [1, 3]);
    const stages: ModelStage[] = [];
    try {
      const { weight_map: map } = JSON.parse(await readFile(join(sharded, INDEX_FILE), "utf8")) as {
        weight_map: Record<string, string>;
      };
      for (const range of ranges) {
        const part = join(dir, `llama-4-sharded-${range.firstLayer}`);
        await mkdir(part);
        const keep = new Set(stageParameterSpecs(config, range).map((s) => map[s.name]!));
        expect(keep.size).toBeLessThan(new Set(Object.values(map)).size);
        for (const file of [...keep, INDEX_FILE, "config.json"])
          await copyFile(join(sharded, file), join(part, file));
        await expect(loadModel(part)).rejects.toMatchObject({ code: "IO" });
        stages.push(await loadModelStage(part, range));
      }
      const ids = tokenIds(config.vocabSize, 2, 8, 7);
      expect(maxAbsDiff(runChain(stages, ids, undefined, true), fullLogits(full, ids))).toBeLessThanOrEqual(
        1e-5,
      );
    } finally {
      full.dispose();
      for (const s of stages) s.dispose();
    }
  });
});

describe("errors", () => {
  it("bad layer ranges are ModelError LAYER_RANGE", async () => {
    for (const range of [
      { firstLayer: 1, lastLayer: 0 },
      { firstLayer: -1, lastLayer: 0 },
      { firstLayer: 0, lastLayer: 2 },
      { firstLayer: 2, lastLayer: 2 },
      { firstLayer: 0.5, lastLayer: 1 },
      { firstLayer: Number.NaN, lastLayer: 1 },
    ]) {
      const err = await loadModelStage(FIXTURE, range).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ModelError);
      expect(err).toMatchObject({ code: "LAYER_RANGE" });
    }
  });

  it("a stage refuses input of the wrong kind and another stage's cache", async () => {
    const [first, last] = await loadStages(FIXTURE, split(2, [1]));
    try {
      const ids = tf.tensor2d([[1, 2, 3]], undefined, "int32");
      const hidden = tf.zeros([1, 3, 64]) as tf.Tensor3D;
      const narrow = tf.zeros([1, 3, 32]);
      for (const [stage, input] of [
        [last!, ids],
        [first!, hidden],
        [last!, narrow],
        [first!, tf.tensor2d([[1, 2]], undefined, "float32")],
      ] as const) {
        expect(() => stage.forward(input)).toThrow(expect.objectContaining({ code: "INPUT_INVALID" }));
      }
      // A cache for both layers does not fit a one-layer stage.
      expect(() => last!.forward(hidden, new KVCache(2))).toThrow(
        expect.objectContaining({ code: "INPUT_INVALID" }),
      );
      const cache = last!.newCache();
      expect(() => last!.forward(tf.zeros([1, 65, 64]), cache)).toThrow(
        expect.objectContaining({ code: "CONTEXT_OVERFLOW" }),
      );
      for (const t of [ids, hidden, narrow]) t.dispose();
    } finally {
      first!.dispose();
      last!.dispose();
    }
  });

  it("hidden states round-trip the wire bit for bit, and malformed bytes are INPUT_INVALID", () => {
    fc.assert(
      fc.property(
        fc.tuple(
          fc.integer({ min: 1, max: 3 }),
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 1, max: 5 }),
        ),
        fc.infiniteStream(fc.float()),
        (shape, values) => {
          const n = shape[0] * shape[1] * shape[2];
          const data = Float32Array.from(values.take(n));
          const back = decodeHiddenStates(encodeHiddenStates({ data, shape }));
          expect(back.shape).toEqual(shape);
          expect(new Uint8Array(back.data.buffer)).toEqual(new Uint8Array(data.buffer));
        },
      ),
    );
    const good = encodeHiddenStates({ data: new Float32Array(6), shape: [1, 2, 3] });
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(4, 0xffffffff, true);
    new DataView(huge.buffer).setUint32(8, 0xffffffff, true);
    const zero = good.slice();
    zero[12] = 0;
    for (const bytes of [
      good.subarray(0, 10),
      good.subarray(0, good.length - 1),
      huge,
      zero,
      Uint8Array.of(...good).fill(0, 0, 4),
    ]) {
      expect(() => decodeHiddenStates(bytes)).toThrow(expect.objectContaining({ code: "INPUT_INVALID" }));
    }
    // Unaligned input (a view into a larger message) decodes too.
    const framed = new Uint8Array(good.length + 1);
    framed.set(good, 1);
    expect(decodeHiddenStates(framed.subarray(1)).shape).toEqual([1, 2, 3]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeHiddenStates(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(ModelError);
        }
      }),
    );
    expect(() => encodeHiddenStates({ data: new Float32Array(5), shape: [1, 2, 3] })).toThrow(ModelError);
  });
});
