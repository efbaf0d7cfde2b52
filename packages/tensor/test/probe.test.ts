import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { gpt2ConfigJson } from "../src/config.ts";
import { createModel, loadModel, weightsDigest } from "../src/model.ts";
import { modelFromWeights, readWeights, sequenceLogProbs } from "../src/probe.ts";
import { SafetensorsFile } from "../src/safetensors.ts";

const FIXTURE = join(import.meta.dirname, "fixtures", "gpt2-tiny");

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
});

describe("sequenceLogProbs", () => {
  it("is the log-softmax of the transformers reference logits", async () => {
    const ref = await SafetensorsFile.open(join(FIXTURE, "reference.safetensors"));
    const ids = (await ref.read("input_ids")).data as Int32Array;
    const logits = await ref.readF32("logits");
    await ref.close();
    const model = await loadModel(FIXTURE);
    const seqs = [ids.slice(0, 16), ids.slice(16, 32)];
    const out = sequenceLogProbs(model, seqs, { batchSize: 1 });
    model.dispose();
    const V = 1000;
    let worst = 0;
    for (const [b, s] of out.entries()) {
      expect(s.positions).toBe(15);
      expect(Array.from(s.targets)).toEqual(Array.from(seqs[b]!.slice(1)));
      for (let t = 0; t < 15; t++) {
        const row = logits.subarray((b * 16 + t) * V, (b * 16 + t + 1) * V);
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
        for (let v = 0; v < V; v++)
          worst = Math.max(worst, Math.abs(s.logProbs[t * V + v]! - (row[v]! - lse)));
      }
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it("groups sequences of different lengths and keeps input order", () => {
    const model = createModel(
      gpt2ConfigJson({ vocabSize: 50, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 }),
      {
        seed: 3,
      },
    );
    const seqs = [
      [1, 2, 3],
      [4, 5],
      [6, 7, 8],
    ];
    const all = sequenceLogProbs(model, seqs, { batchSize: 2 });
    const one = seqs.map((s) => sequenceLogProbs(model, [s])[0]!);
    expect(all.map((s) => s.positions)).toEqual([2, 1, 2]);
    for (const [i, s] of all.entries()) {
      for (let k = 0; k < s.logProbs.length; k++) expect(s.logProbs[k]).toBeCloseTo(one[i]!.logProbs[k]!, 5);
    }
    expect(() => sequenceLogProbs(model, [[1]])).toThrow(/1 tokens/);
    expect(() => sequenceLogProbs(model, [[1, 99]])).toThrow(/outside the vocabulary/);
    expect(() => sequenceLogProbs(model, [new Array(17).fill(1)])).toThrow(/17 tokens/);
    model.dispose();
  });
});

describe("readWeights / modelFromWeights", () => {
  it("round-trips bit for bit and rejects missing or mis-sized weights", () => {
    const model = createModel(
      gpt2ConfigJson({ vocabSize: 50, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2 }),
      {
        seed: 5,
      },
    );
    const weights = readWeights(model);
    const copy = modelFromWeights(model.config, weights);
    expect(weightsDigest(copy)).toBe(weightsDigest(model));
    const name = [...weights.keys()][0]!;
    const missing = new Map(weights);
    missing.delete(name);
    expect(() => modelFromWeights(model.config, missing)).toThrow(/no weights/);
    const short = new Map(weights);
    short.set(name, new Float32Array(3));
    expect(() => modelFromWeights(model.config, short)).toThrow(/3 values/);
    copy.dispose();
    model.dispose();
  });
});
