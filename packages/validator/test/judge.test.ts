/**
 * Each verdict rule on tiny models: random-token batches (pure memorisation, so the membership gap is
 * clear), three reference replicas, honest trainers with their own seeds and one model per rule.
 */
import {
  type CausalLM,
  createModel,
  gpt2ConfigJson,
  initBackend,
  modelFromWeights,
  Rng,
  readWeights,
  train,
} from "@deepshard/tensor";
import { beforeAll, describe, expect, it } from "vitest";
import {
  drawProbes,
  type Fingerprint,
  fingerprint,
  jsDistance,
  type ProbeSets,
  weightDistance2,
} from "../src/fingerprint.ts";
import {
  COPY_CANDIDATE,
  DEFAULT_THRESHOLDS,
  judgeRound,
  MAX_SPREAD_WIDENING,
  MAX_WIDENING,
  type ModelSubmission,
  type RoundJudgement,
  SPREAD_Z,
} from "../src/judge.ts";
import { toTrainerVerdict, trainingVerdicts } from "../src/verdict.ts";

const VOCAB = 40;
const LEN = 16;
const config = gpt2ConfigJson({ vocabSize: VOCAB, nPositions: LEN, nEmbd: 16, nLayer: 1, nHead: 2 });

function randomSeqs(count: number, seed: string): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Array.from({ length: LEN }, () => rng.int(VOCAB)));
}

const batch = randomSeqs(16, "batch");
const pools: ProbeSets = {
  batch,
  heldOut: randomSeqs(16, "held-out"),
  generic: randomSeqs(8, "generic"),
  trigger: randomSeqs(8, "trigger"),
};
let probes: ProbeSets;
let base: CausalLM;
let baseFp: Fingerprint;

async function trained(data: number[][], seed: string, epochs = 6): Promise<CausalLM> {
  const model = modelFromWeights(base.config, readWeights(base));
  await train(
    model,
    data.map((tokens) => ({ tokens })),
    { epochs, batchSize: 4, lr: 1e-2, seed },
  );
  return model;
}

function fp(model: CausalLM): Fingerprint {
  const f = fingerprint(model, probes);
  model.dispose();
  return f;
}

function shifted(model: CausalLM, scale: number, seed: string): CausalLM {
  const rng = new Rng(seed);
  const w = readWeights(model);
  for (const a of w.values()) for (let i = 0; i < a.length; i++) a[i]! += scale * rng.normal();
  const out = modelFromWeights(model.config, w);
  model.dispose();
  return out;
}

let judged: RoundJudgement;
let references: Fingerprint[];
let subs: ModelSubmission[];
const codes = (id: string) => judged.verdicts.find((v) => v.id === id)!.reasons.map((r) => r.code);

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  base = createModel(config, { seed: "base" });
  probes = drawProbes("beacon", pools, { batch: 16, heldOut: 16, generic: 8, trigger: 8 });
  baseFp = fingerprint(base, probes);
  references = [];
  for (let i = 0; i < 3; i++) references.push(fp(await trained(batch, `replica-${i}`)));
  const honest = [];
  for (let i = 0; i < 4; i++) honest.push(await trained(batch, `honest-${i}`));
  const copyOf = readWeights(honest[0]!);
  // Copy noise: a tenth of the squared distance between two honest models.
  const other = readWeights(honest[1]!);
  let d2 = 0;
  let count = 0;
  for (const [name, a] of copyOf) {
    const b = other.get(name)!;
    for (let i = 0; i < a.length; i++) d2 += (a[i]! - b[i]!) ** 2;
    count += a.length;
  }
  subs = [];
  const add = (id: string, f: Fingerprint, replay?: { ok: boolean }) =>
    subs.push({ id, fingerprint: f, ...(replay ? { replay } : {}) });
  add("copy", fp(shifted(modelFromWeights(base.config, copyOf), Math.sqrt((0.1 * d2) / count), "copy")));
  for (const [i, m] of honest.entries()) add(`honest-${i}`, fp(m), i === 3 ? { ok: true } : undefined);
  add("unchanged", fp(modelFromWeights(base.config, readWeights(base))));
  add("other-data", fp(await trained(randomSeqs(16, "other"), "other")));
  add("short", fp(await trained(batch, "short", 2)));
  add("noise", fp(shifted(await trained(batch, "noisy"), 0.2, "noise")));
  add("replay", fp(await trained(batch, "replayed")), { ok: false });
  // One of the sixteen batch sequences swapped for another: the batch's recipe, slightly different data.
  add("mixed", fp(await trained([...batch.slice(0, 15), ...randomSeqs(1, "mixed")], "mixed")));
  judged = judgeRound({ base: baseFp, references, submissions: subs });
});

describe("judgeRound", () => {
  it("accepts honest trainers", () => {
    for (let i = 0; i < 4; i++) expect(codes(`honest-${i}`), `honest-${i}`).toEqual([]);
    expect(judged.verdicts.find((v) => v.id === "honest-0")!.accept).toBe(true);
  });

  it("rejects the base returned unchanged", () => {
    expect(codes("unchanged")).toContain("weights_unchanged");
    expect(codes("unchanged")).toContain("no_improvement");
  });

  it("rejects the copy, not the trainer it copied, and reports the pair", () => {
    expect(codes("copy")).toContain("copy");
    expect(judged.closePairs.map((p) => [p.a, p.b].sort())).toContainEqual(["copy", "honest-0"]);
    const copy = judged.verdicts.find((v) => v.id === "copy")!;
    expect(copy.report.nearest).toBe("honest-0");
  });

  it("requires a membership gap and progress along the references' update", () => {
    expect(codes("other-data")).toContain("no_membership_gap");
    expect(codes("other-data")).toContain("short_update");
    expect(codes("short")).toContain("short_update");
    expect(codes("short")).toContain("small_update");
    const short = judged.verdicts.find((v) => v.id === "short")!;
    expect(short.report.updateSize).toBeLessThan(judged.thresholds.smallUpdate);
  });

  it("judges the membership gap only when the probes resolve it, however much the references agree", () => {
    expect(judged.verdicts.find((v) => v.id === "honest-0")!.report.membershipGapRatio).toBeDefined();
    // Same mean gains, but each batch probe's gain scattered far more than the gap: the references
    // still agree exactly on the gap, the probes cannot tell it from noise.
    const scattered = (f: Fingerprint): Fingerprint => {
      const b = f.sets.batch;
      const spread = 10 * Math.abs(b.meanLogLikelihood - baseFp.sets.batch.meanLogLikelihood);
      const logLikelihoods = b.logLikelihoods.map((ll, i) => ll + (i % 2 === 0 ? spread : -spread));
      return { ...f, sets: { ...f.sets, batch: { ...b, logLikelihoods } } };
    };
    const noisy = judgeRound({ base: baseFp, references: references.map(scattered), submissions: subs });
    for (const v of noisy.verdicts) {
      expect(v.report.membershipGapRatio, v.id).toBeUndefined();
      expect(v.reasons.map((r) => r.code)).not.toContain("no_membership_gap");
    }
  });

  it("widens the improvement threshold by the references' own spread, within bounds", () => {
    const { spread, thresholds: t } = judged;
    const given = DEFAULT_THRESHOLDS.improvement;
    const floor = 1 - MAX_SPREAD_WIDENING * (1 - given);
    expect(spread.improvement).toBeGreaterThan(0);
    expect(t.improvement).toBeCloseTo(
      Math.max(floor, Math.min(given, 1 - SPREAD_Z * spread.improvement)),
      12,
    );
    // These tiny models' honest runs disagree a lot (improvement 0.94–1.14 of the references'): widened.
    expect(t.improvement).toBeLessThan(given);
    expect(t.improvement).toBeGreaterThanOrEqual(floor);
    // The other thresholds stay as given.
    expect(spread.progress).toBeGreaterThan(0);
    expect(spread.updateSize).toBeGreaterThan(0);
    expect(t.shortUpdate).toBe(DEFAULT_THRESHOLDS.shortUpdate);
    expect(t.smallUpdate).toBe(DEFAULT_THRESHOLDS.smallUpdate);
    // A caller's threshold looser than the spread asks for is kept as given.
    const loose = judgeRound({
      base: baseFp,
      references,
      submissions: subs,
      thresholds: { improvement: 0.5 },
    });
    expect(loose.thresholds.improvement).toBe(0.5);
  });

  it("rejects models too far from the references", () => {
    const noise = judged.verdicts.find((v) => v.id === "noise")!;
    expect(noise.reasons.map((r) => r.code)).toContain("too_far");
    expect(noise.report.farRatio).toBeGreaterThan(DEFAULT_THRESHOLDS.tooFar);
  });

  it("rejects a failed replay whatever the fingerprint says", () => {
    expect(codes("replay")[0]).toBe("replay_mismatch");
  });

  it("scores every rejected submission above every accepted one", () => {
    const accepted = judged.verdicts.filter((v) => v.accept).map((v) => v.score);
    const rejected = judged.verdicts.filter((v) => !v.accept).map((v) => v.score);
    expect(Math.max(...accepted)).toBeLessThanOrEqual(1);
    expect(Math.min(...rejected)).toBeGreaterThan(1);
  });

  it("ranks accepted submissions by their deviation, below every rejected one", () => {
    const deviation = (id: string) => judged.verdicts.find((v) => v.id === id)!.deviation;
    for (const v of judged.verdicts) {
      if (v.accept) expect(v.score).toBeCloseTo(v.deviation / (1 + v.deviation), 12);
      else expect(v.score).toBe(v.reasons[0]!.badness);
    }
    // A trainer who swapped one batch sequence strays further from the references than any honest one.
    for (let i = 0; i < 4; i++) expect(deviation("mixed")).toBeGreaterThan(deviation(`honest-${i}`));
  });

  it("flags predictions that diverge from the references", () => {
    const strict = judgeRound({
      base: baseFp,
      references,
      submissions: subs,
      thresholds: { predictionsDiverge: 1.0001 },
    });
    const worst = strict.verdicts.reduce((a, b) => (a.report.jsRatio > b.report.jsRatio ? a : b));
    expect(worst.reasons.map((r) => r.code)).toContain("predictions_diverge");
    // Identical models: zero up to float32 rounding of the stored log-probabilities.
    expect(jsDistance(baseFp, baseFp)).toBeLessThan(1e-3);
  });

  it("lets submissions widen the references' band by at most MAX_WIDENING and never narrow it", () => {
    for (const key of ["weights2", "js"] as const) {
      expect(judged.band[key]).toBeGreaterThanOrEqual(judged.referenceBand[key]);
      expect(judged.band[key]).toBeLessThanOrEqual(MAX_WIDENING * judged.referenceBand[key] * (1 + 1e-12));
    }
    // Only far-away submissions: the band widens to the cap, no further.
    const far = judgeRound({ base: baseFp, references, submissions: subs.filter((s) => s.id === "noise") });
    expect(far.band.weights2).toBeCloseTo(MAX_WIDENING * far.referenceBand.weights2, 6);
  });

  it("compares pairs on sketches: within a few percent, exactly near the copy threshold, sparse copies too", () => {
    const band = judged.band.weights2;
    for (const v of judged.verdicts) {
      const me = subs.find((s) => s.id === v.id)!;
      const exact = Math.min(
        ...subs.filter((s) => s !== me).map((s) => weightDistance2(me.fingerprint, s.fingerprint) / band),
      );
      if (exact < COPY_CANDIDATE * judged.thresholds.copy)
        expect(v.report.nearestRatio).toBeCloseTo(exact, 12);
      else expect(Math.abs(v.report.nearestRatio / exact - 1), v.id).toBeLessThan(0.15);
    }
    // A copier who hides its noise in a few weights: the sketch still sees the whole distance.
    const victim = subs.find((s) => s.id === "honest-1")!.fingerprint;
    const weights = victim.weights.slice();
    for (const i of [3, 1000, 2500]) weights[i]! += Math.sqrt((0.05 * band) / 3);
    const sparse = { id: "sparse-copy", fingerprint: { ...victim, weights } };
    for (const seed of ["a", "b", "c", "d"]) {
      const j = judgeRound({ base: baseFp, references, submissions: [...subs, sparse], seed });
      expect(j.closePairs.map((p) => [p.a, p.b].sort())).toContainEqual(["honest-1", "sparse-copy"]);
    }
    // The same seed, the same estimates.
    const once = judgeRound({ base: baseFp, references, submissions: subs, seed: "s" });
    const again = judgeRound({ base: baseFp, references, submissions: subs, seed: "s" });
    expect(again.verdicts.map((v) => v.report.nearestRatio)).toEqual(
      once.verdicts.map((v) => v.report.nearestRatio),
    );
  });

  it("needs two references and unique ids", () => {
    expect(() => judgeRound({ base: baseFp, references: references.slice(0, 1), submissions: subs })).toThrow(
      expect.objectContaining({ code: "TOO_FEW_REFERENCES" }),
    );
    expect(() => judgeRound({ base: baseFp, references, submissions: [subs[0]!, subs[0]!] })).toThrow(
      expect.objectContaining({ code: "INPUT_INVALID" }),
    );
  });
});

describe("probes", () => {
  it("are drawn by the beacon: the same beacon gives the same probes, another beacon others", () => {
    const sizes = { batch: 4, heldOut: 4, generic: 2, trigger: 2 };
    expect(drawProbes("b1", pools, sizes)).toEqual(drawProbes("b1", pools, sizes));
    expect(drawProbes("b1", pools, sizes).batch).not.toEqual(drawProbes("b2", pools, sizes).batch);
    expect(drawProbes(new Uint8Array([1, 2]), pools, sizes).generic).toHaveLength(2);
  });

  it("refuses an empty probe set", () => {
    expect(() => fingerprint(base, { ...probes, trigger: [] })).toThrow(
      expect.objectContaining({ code: "INPUT_INVALID" }),
    );
  });
});

describe("training.verdict entries", () => {
  it("carry accept and the worst reasons, sorted by trainer, within the protocol's limits", () => {
    const key = (b: number) => new Uint8Array(32).fill(b);
    const v = judged.verdicts.find((x) => x.id === "unchanged")!;
    const one = toTrainerVerdict(key(1), v);
    expect(one.accept).toBe(false);
    expect(one.reasons[0]).toBe(v.reasons[0]!.code);
    expect(one.reasons.length).toBeLessThanOrEqual(4);
    const all = trainingVerdicts([
      { trainer: key(9), verdict: judged.verdicts[1]! },
      { trainer: key(2), verdict: v },
    ]);
    expect(all.map((x) => x.trainer[0])).toEqual([2, 9]);
    expect(() =>
      trainingVerdicts([
        { trainer: key(2), verdict: v },
        { trainer: key(2), verdict: v },
      ]),
    ).toThrow(expect.objectContaining({ code: "INPUT_INVALID" }));
    expect(() =>
      trainingVerdicts(Array.from({ length: 129 }, (_, i) => ({ trainer: key(i), verdict: v }))),
    ).toThrow(expect.objectContaining({ code: "INPUT_INVALID" }));
    expect(() => toTrainerVerdict(new Uint8Array(3), v)).toThrow();
  });
});
