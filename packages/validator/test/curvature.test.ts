import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { initBackend, loadModel, SafetensorsFile, sequenceLogProbs } from "@deepshard/tensor";
import { beforeAll, describe, expect, it } from "vitest";
import { curvature, logSoftmaxRows } from "../src/curvature.ts";

// The transformers fixture (a copy of ../shared/fixtures/hf/gpt2-tiny kept with the tensor package's tests).
const FIXTURE = join(import.meta.dirname, "..", "..", "tensor", "test", "fixtures", "gpt2-tiny");
const V = 1000;
const T = 16;

const expected = JSON.parse(await readFile(join(FIXTURE, "expected.json"), "utf8")) as {
  fast_detectgpt_curvature: { per_sequence: number[]; log_likelihood_sum: number[] };
};
let ids: Int32Array;
let logits: Float32Array;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  const ref = await SafetensorsFile.open(join(FIXTURE, "reference.safetensors"));
  ids = (await ref.read("input_ids")).data as Int32Array;
  logits = await ref.readF32("logits");
  await ref.close();
});

function relative(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

describe("Fast-DetectGPT analytic curvature", () => {
  it("matches the reference within 1e-5 relative from the reference logits", () => {
    for (let b = 0; b < 2; b++) {
      // Positions 0..14 predict tokens 1..15 (t = 1..15 in the fixture's definition).
      const rows = logits.subarray(b * T * V, (b * T + T - 1) * V);
      const c = curvature({
        positions: T - 1,
        vocab: V,
        logProbs: logSoftmaxRows(rows, V),
        targets: ids.subarray(b * T + 1, (b + 1) * T),
      });
      expect(relative(c.score, expected.fast_detectgpt_curvature.per_sequence[b]!)).toBeLessThan(1e-5);
      expect(
        relative(c.logLikelihood, expected.fast_detectgpt_curvature.log_likelihood_sum[b]!),
      ).toBeLessThan(1e-5);
    }
  });

  it("matches the reference within 1e-3 relative from our own GPT-2 forward pass", async () => {
    const model = await loadModel(FIXTURE);
    const seqs = [ids.slice(0, T), ids.slice(T, 2 * T)];
    const lp = sequenceLogProbs(model, seqs);
    model.dispose();
    for (let b = 0; b < 2; b++) {
      const c = curvature(lp[b]!);
      expect(relative(c.score, expected.fast_detectgpt_curvature.per_sequence[b]!)).toBeLessThan(1e-3);
      expect(
        relative(c.logLikelihood, expected.fast_detectgpt_curvature.log_likelihood_sum[b]!),
      ).toBeLessThan(1e-3);
    }
  });

  it("uses the sampling model's probabilities and the scoring model's log-probabilities", () => {
    // Two positions over a vocabulary of 3, by hand.
    const scoring = {
      positions: 2,
      vocab: 3,
      logProbs: [0.5, 0.3, 0.2, 0.1, 0.1, 0.8].map(Math.log),
      targets: [0, 2],
    };
    const sampling = { ...scoring, logProbs: [0.2, 0.2, 0.6, 1 / 3, 1 / 3, 1 / 3].map(Math.log) };
    const c = curvature(scoring, sampling);
    let mu = 0;
    let variance = 0;
    for (let t = 0; t < 2; t++) {
      const q = sampling.logProbs.slice(t * 3, t * 3 + 3).map(Math.exp);
      const lp = scoring.logProbs.slice(t * 3, t * 3 + 3);
      const m = q.reduce((a, qi, i) => a + qi * lp[i]!, 0);
      mu += m;
      variance += q.reduce((a, qi, i) => a + qi * lp[i]! ** 2, 0) - m * m;
    }
    const ll = Math.log(0.5) + Math.log(0.8);
    expect(c.logLikelihood).toBeCloseTo(ll, 12);
    expect(c.score).toBeCloseTo((ll - mu) / Math.sqrt(variance), 12);
    expect(curvature(scoring).score).not.toBeCloseTo(c.score, 3);
  });

  it("rejects inconsistent shapes with typed errors", () => {
    const x = { positions: 2, vocab: 3, logProbs: new Float64Array(6), targets: [0, 1] };
    expect(() => curvature({ ...x, logProbs: new Float64Array(5) })).toThrow(
      expect.objectContaining({ code: "INPUT_INVALID" }),
    );
    expect(() => curvature({ ...x, targets: [0, 7] })).toThrow(
      expect.objectContaining({ code: "INPUT_INVALID" }),
    );
    expect(() =>
      curvature(x, { positions: 3, vocab: 2, logProbs: new Float64Array(6), targets: [0, 1, 1] }),
    ).toThrow(expect.objectContaining({ code: "MODEL_MISMATCH" }));
    expect(() => logSoftmaxRows([1, 2, 3], 2)).toThrow(expect.objectContaining({ code: "INPUT_INVALID" }));
  });
});
