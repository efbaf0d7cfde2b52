/** `npm run bench:validator`: the adversary benchmark as bench rows (see harness.ts and the README). */
import { writeFile } from "node:fs/promises";
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import { initBackend } from "@deepshard/tensor";
import { DEFAULT_PROBE_SIZES } from "../src/fingerprint.ts";
import type { SubmissionReport } from "../src/judge.ts";
import { REDUCED_GENESIS } from "./genesis.ts";
import { type BenchResult, runBenchmark } from "./harness.ts";
import { ROUND } from "./round.ts";

// The targets of issue #5: these classes must be caught with no honest model rejected.
const MUST_CATCH = new Set(["base-unchanged", "noise", "copy", "other-data", "skip-25", "skip-50"]);

const adversaryBench: BenchModule = async (ctx) => {
  await initBackend({ backend: "wasm" });
  const r = await runBenchmark({
    honest: ctx.quick ? 8 : 20,
    perClass: ctx.quick ? 2 : 5,
    // Two replicas give the judge one pair to estimate its own spread from: on the genesis model
    // that called the membership gap clear while honest runs spread 0.25–1.4× around it (README).
    references: Number(process.env.DEEPSHARD_BENCH_REFERENCES ?? 3),
    // The third replica is paid for by 8 instead of 10 batch and held-out probes, which feed only
    // the improvement and membership-gap rules, keeping validation within 10% of a training run.
    probeSizes: { ...DEFAULT_PROBE_SIZES, batch: 8, heldOut: 8 },
    round: { ...ROUND, seed: process.env.DEEPSHARD_BENCH_SEED ?? ROUND.seed },
    genesis: ctx.quick || process.env.DEEPSHARD_BENCH_GENESIS === "reduced" ? REDUCED_GENESIS : {},
    replayed: 3,
    segments: 8,
    cacheModels: process.env.DEEPSHARD_BENCH_MODEL_CACHE === "1",
    log: ctx.log,
  });
  if (r.cachedModels > 0) {
    ctx.log(
      `${r.cachedModels} models came from the model cache (training CPU times as measured when cached)`,
    );
  }
  logRatios(r, ctx.log);
  // Every verdict with its report, for calibrating the judge offline.
  const reportsFile = process.env.DEEPSHARD_BENCH_REPORTS;
  if (reportsFile) {
    await writeFile(
      reportsFile,
      JSON.stringify({ ...r.judgement, verdicts: r.verdicts }, (_, v) =>
        v instanceof Float64Array ? [...v] : v,
      ),
    );
    ctx.log(`verdicts written to ${reportsFile}`);
  }
  const rows: BenchRow[] = [];
  const row = (metric: string, value: number, unit: string, target?: string, pass?: boolean) =>
    rows.push({ package: "validator", metric, value, unit, target, pass });
  row("genesis model parameters", r.genesis.parameterCount, "");
  row("genesis held-out loss", r.genesis.heldOutLoss, "nats/byte");
  row("honest models rejected", r.honestRejected, `of ${r.honest}`, "0", r.honestRejected === 0);
  for (const c of r.classes) {
    const caught = c.rejected / c.instances;
    const must = MUST_CATCH.has(c.name);
    row(
      `${c.name}: rejected`,
      caught,
      "fraction",
      must ? ">= 0.95" : undefined,
      must ? caught >= 0.95 : undefined,
    );
    row(`${c.name}: detection at 1% FPR`, c.detectionAt1, "fraction");
    const poison = c.name === "poison-5";
    row(
      `${c.name}: detection at 5% FPR`,
      c.detectionAt5,
      "fraction",
      poison ? ">= 0.9" : undefined,
      poison ? c.detectionAt5 >= 0.9 : undefined,
    );
    row(`${c.name}: AUROC`, c.auroc, "");
  }
  const perSubmission = r.validateMs / r.trainMs;
  const replicas = r.replicasMs / r.trainMs;
  row("training run (honest, mean)", r.trainMs, "ms");
  row("judging per submission (distances, rules)", r.judgeMs / r.trainMs, "of a training run");
  row(
    "validation per submission (probes + judging)",
    perSubmission,
    "of a training run",
    "<= 0.1",
    perSubmission <= 0.1,
  );
  row(
    "honest transcripts replayed bit for bit",
    r.replaysOk,
    `of ${r.replays}`,
    `${r.replays}`,
    r.replaysOk === r.replays,
  );
  row("replay of one segment (1/8 of the run)", r.replayMs / r.trainMs, "of a training run");
  row("probe forward tokens per submission", r.probeTokenFraction, "of a training run's forward-equivalents");
  row("reference replicas, whole round", replicas, "training runs");
  const amortized = perSubmission + replicas / r.submissions;
  row(
    `validation incl. replicas amortized over ${r.submissions} submissions`,
    amortized,
    "of a training run",
    "<= 0.1",
    amortized <= 0.1,
  );
  // How many submissions a round needs for the replicas' fixed cost to fit in the 10% budget.
  row(
    "submissions needed to amortize the replicas within 10%",
    perSubmission < 0.1 ? Math.ceil(replicas / (0.1 - perSubmission)) : Number.POSITIVE_INFINITY,
    "submissions",
  );
  return rows;
};

/** Per class (honest first, as submitted), the range of each rule's ratio: what the thresholds are judged against. */
function logRatios(r: BenchResult, log: (line: string) => void): void {
  const ratios: [string, (x: SubmissionReport) => number | undefined][] = [
    ["progress", (x) => x.progress],
    ["size", (x) => x.updateSize],
    ["far", (x) => x.farRatio],
    ["js", (x) => x.jsRatio],
    ["improvement", (x) => x.improvementRatio],
    ["gap", (x) => x.membershipGapRatio],
    ["nearest", (x) => x.nearestRatio],
  ];
  for (const cls of new Set(r.verdicts.map((v) => v.cls))) {
    const reports = r.verdicts.filter((v) => v.cls === cls).map((v) => v.verdict.report);
    const ranges = ratios.map(([name, of]) => {
      const xs = reports.map(of).filter((x) => x !== undefined);
      return `${name} ${xs.length === 0 ? "-" : `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`}`;
    });
    log(`${cls}: ${ranges.join(", ")}`);
  }
}

export default adversaryBench;
