/**
 * The adversary benchmark: honest trainers with their own seeds and instances of every dishonest
 * class fine-tune the genesis model on one round's batch; the validator trains its reference replicas,
 * fingerprints everything on probes drawn from a beacon, and judges the round. Reports detection per
 * class and what validation cost next to one training run.
 */
import { type CausalLM, modelFromWeights, readWeights, weightsDigest } from "@deepshard/tensor";
import { ValidatorError } from "../src/errors.ts";
import { drawProbes, fingerprint, type ProbeSizes } from "../src/fingerprint.ts";
import {
  judgeRound,
  type ModelSubmission,
  type RoundJudgement,
  type Verdict,
  type VerdictThresholds,
} from "../src/judge.ts";
import { type Checkpoint, chooseSegment, replaySegment, trainWithTranscript } from "../src/replay.ts";
import { type GenesisInfo, type GenesisRecipe, genesisModel, genesisRecipe } from "./genesis.ts";
import { ModelCache } from "./model-cache.ts";
import {
  ADVERSARIES,
  type Adversary,
  adversary,
  ROUND,
  type RoundRecipe,
  roundData,
  trainCopy,
} from "./round.ts";

/**
 * CPU time of this process in ms: the machine is shared, so wall time would charge other people's
 * work to whichever phase it overlapped; tfjs-wasm runs on this one thread.
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export interface BenchOptions {
  honest: number;
  perClass: number;
  references: number;
  classes?: readonly Adversary[];
  /** Overrides of the tensor package's genesis recipe (none: the network's genesis model). */
  genesis?: GenesisRecipe;
  round?: RoundRecipe;
  thresholds?: Partial<VerdictThresholds>;
  /** Probes per set (the validator's defaults otherwise). */
  probeSizes?: ProbeSizes;
  beacon?: string;
  /** Honest trainers that record a transcript on the deterministic backend and get one segment replayed. */
  replayed?: number;
  /** Transcript segments per run. */
  segments?: number;
  /** Reuse trained models across runs (see model-cache.ts). */
  cacheModels?: boolean;
  log?: (line: string) => void;
}

export interface ClassResult {
  name: Adversary;
  instances: number;
  /** Rejected by the validator's own rules. */
  rejected: number;
  detectionAt1: number;
  detectionAt5: number;
  auroc: number;
}

export interface BenchResult {
  genesis: GenesisInfo;
  classes: ClassResult[];
  honest: number;
  honestRejected: number;
  verdicts: { cls: Adversary | "honest"; verdict: Verdict }[];
  /** The round's band, spread and the thresholds applied (see RoundJudgement). */
  judgement: Pick<RoundJudgement, "band" | "referenceBand" | "spread" | "thresholds">;
  /** Mean CPU time of one honest training run. */
  trainMs: number;
  /** Fingerprint + judging, per submission. */
  validateMs: number;
  /** Of which judging (distances to references and other submissions). */
  judgeMs: number;
  /** Reference replicas' training, for the whole round. */
  replicasMs: number;
  submissions: number;
  /** Honest transcripts whose beacon-chosen segment replayed bit for bit, of `replays`. */
  replaysOk: number;
  replays: number;
  /** CPU time of one segment replay (checks and training), mean. */
  replayMs: number;
  /** Forward-pass tokens of one fingerprint over the forward-equivalent tokens of one training run (backward ≈ 2 forwards). */
  probeTokenFraction: number;
  /** Models loaded from the model cache instead of trained in this run. */
  cachedModels: number;
}

/** Fraction of `scores` above the threshold that lets at most `fpr` of the honest scores above it. */
function detectionAt(honest: number[], scores: number[], fpr: number): number {
  const sorted = honest.slice().sort((a, b) => b - a);
  const allowed = Math.floor(fpr * sorted.length);
  const threshold = sorted[allowed] ?? Number.NEGATIVE_INFINITY;
  return scores.filter((s) => s > threshold).length / scores.length;
}

function auroc(honest: number[], scores: number[]): number {
  let wins = 0;
  for (const s of scores) for (const h of honest) wins += s > h ? 1 : s === h ? 0.5 : 0;
  return wins / (scores.length * honest.length);
}

export async function runBenchmark(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  const recipe = options.round ?? ROUND;
  const classes = options.classes ?? ADVERSARIES;
  const { model: base, info: genesis } = await genesisModel(options.genesis ?? {}, log);
  if (recipe.length > base.config.maxPositions) {
    throw new ValidatorError("INPUT_INVALID", "round sequences are longer than the genesis context", {
      details: `round length ${recipe.length}, context ${base.config.maxPositions}`,
    });
  }
  const baseWeights = readWeights(base);
  const data = roundData(recipe);
  const cache = new ModelCache(
    { genesis: genesisRecipe(options.genesis ?? {}), recipe },
    options.cacheModels === true,
  );
  // The beacon is a block hash after the commit deadline: nobody training knew these probes.
  const beacon = options.beacon ?? "block-hash-after-commit-deadline";
  const probes = drawProbes(beacon, data.pools, options.probeSizes);

  let validateMs = 0;
  const fp = (model: CausalLM) => {
    const t0 = cpuMs();
    const f = fingerprint(model, probes);
    validateMs += cpuMs() - t0;
    model.dispose();
    return f;
  };
  const baseFp = fingerprint(base, probes);
  // Warm-up (kernel compilation, gradient registration) so no timed run pays for it.
  (
    await trainCopy(
      base,
      data.batch.slice(0, 8),
      { ...recipe, train: { ...recipe.train, epochs: 1 } },
      "warm-up",
      baseWeights,
    )
  ).dispose();

  const references = [];
  let replicasMs = 0;
  for (let i = 0; i < options.references; i++) {
    const seed = `validator-replica-${i}`;
    const { model, ms } = await cache.get(
      seed,
      base,
      () => trainCopy(base, data.batch, recipe, seed, baseWeights),
      cpuMs,
    );
    replicasMs += ms;
    references.push(fp(model));
  }
  // The replicas' fingerprints are part of the round's fixed cost, not of any one submission.
  replicasMs += validateMs;
  validateMs = 0;

  const submissions: (ModelSubmission & { cls: Adversary | "honest" })[] = [];
  const honestWeights: Map<string, Float32Array>[] = [];
  let trainMs = 0;
  let replayMs = 0;
  let replaysOk = 0;
  const replays = Math.min(options.replayed ?? 0, options.honest);
  const examples = data.batch.map((tokens) => ({ tokens }));
  const baseDigest = weightsDigest(base);
  for (let i = 0; i < options.honest; i++) {
    const seed = `honest-trainer-${i}`;
    let replay: { ok: boolean } | undefined;
    let model: CausalLM;
    const t1 = cpuMs();
    if (i < replays) {
      // A trainer on the deterministic backend: same weights as trainCopy, plus a transcript.
      model = modelFromWeights(base.config, baseWeights);
      const checkpoints: Checkpoint[] = [];
      const train = { ...recipe.train, seed };
      const steps = Math.ceil(data.batch.length / (train.batchSize ?? 8)) * (train.epochs ?? 1);
      const every = Math.max(1, Math.ceil(steps / (options.segments ?? 8)));
      const transcript = await trainWithTranscript(model, examples, train, every, (c) => checkpoints.push(c));
      trainMs += cpuMs() - t1;
      const t3 = cpuMs();
      const segment = chooseSegment(`${options.beacon ?? "beacon"}/${seed}`, transcript);
      const result = await replaySegment({
        config: base.config,
        examples,
        options: train,
        transcript,
        baseDigest,
        submittedDigest: weightsDigest(model),
        segment,
        checkpoint: checkpoints[segment]!,
      });
      replayMs += cpuMs() - t3;
      replaysOk += result.ok ? 1 : 0;
      replay = { ok: result.ok };
    } else {
      const made = await cache.get(
        seed,
        base,
        () => trainCopy(base, data.batch, recipe, seed, baseWeights),
        cpuMs,
      );
      model = made.model;
      trainMs += made.ms;
    }
    honestWeights.push(readWeights(model));
    submissions.push({
      id: `honest-${i}`,
      cls: "honest",
      fingerprint: fp(model),
      ...(replay ? { replay } : {}),
    });
  }
  trainMs /= options.honest;
  log(`${options.honest} honest trainers, ${(trainMs / 1000).toFixed(2)} CPU s per training run`);
  for (const cls of classes) {
    for (let i = 0; i < options.perClass; i++) {
      const { model } = await cache.get(
        `${cls}-${i}`,
        base,
        () => adversary(cls, i, { base, baseWeights, data, recipe, honest: honestWeights }),
        cpuMs,
      );
      submissions.push({ id: `${cls}-${i}`, cls, fingerprint: fp(model) });
    }
    log(`${cls}: ${options.perClass} instances`);
  }
  const t2 = cpuMs();
  const judged = judgeRound({
    base: baseFp,
    references,
    submissions,
    seed: beacon,
    ...(options.thresholds ? { thresholds: options.thresholds } : {}),
  });
  const judgeMs = cpuMs() - t2;
  validateMs += judgeMs;
  const { spread, thresholds } = judged;
  log(
    `references' leave-one-out spread: progress ${spread.progress.toFixed(4)}, update size ${spread.updateSize.toFixed(4)}, improvement ${spread.improvement.toFixed(4)}; ` +
      `thresholds applied: short update ${thresholds.shortUpdate.toFixed(3)}, small update ${thresholds.smallUpdate.toFixed(3)}, improvement ${thresholds.improvement.toFixed(3)}`,
  );
  base.dispose();

  const verdicts = judged.verdicts.map((verdict, i) => ({ cls: submissions[i]!.cls, verdict }));
  const honestScores = verdicts.filter((v) => v.cls === "honest").map((v) => v.verdict.score);
  const results = classes.map((name): ClassResult => {
    const mine = verdicts.filter((v) => v.cls === name);
    const scores = mine.map((v) => v.verdict.score);
    return {
      name,
      instances: mine.length,
      rejected: mine.filter((v) => !v.verdict.accept).length,
      detectionAt1: detectionAt(honestScores, scores, 0.01),
      detectionAt5: detectionAt(honestScores, scores, 0.05),
      auroc: auroc(honestScores, scores),
    };
  });
  const trainTokens = data.batch.reduce((n, s) => n + s.length - 1, 0) * (recipe.train.epochs ?? 1);
  return {
    genesis,
    classes: results,
    honest: options.honest,
    honestRejected: verdicts.filter((v) => v.cls === "honest" && !v.verdict.accept).length,
    verdicts,
    judgement: {
      band: judged.band,
      referenceBand: judged.referenceBand,
      spread,
      thresholds,
    },
    trainMs,
    validateMs: validateMs / submissions.length,
    judgeMs: judgeMs / submissions.length,
    replicasMs,
    submissions: submissions.length,
    replaysOk,
    replays,
    replayMs: replays > 0 ? replayMs / replays : 0,
    probeTokenFraction: baseFp.probeTokens / (3 * trainTokens),
    cachedModels: cache.hits,
  };
}
