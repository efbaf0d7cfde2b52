/**
 * The adversary benchmark, reduced to fit CI: a tiny model of the tensor package's genesis recipe, a
 * few honest trainers and a few instances of the classes that must always be caught.
 */
import { initBackend } from "@deepshard/tensor";
import { beforeAll, describe, expect, it } from "vitest";
import { runBenchmark } from "../bench/harness.ts";

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
});

describe("reduced adversary benchmark", () => {
  it("catches base-unchanged and copies, rejects no honest trainer and replays honest segments", async () => {
    const r = await runBenchmark({
      honest: 6,
      perClass: 2,
      references: 3,
      replayed: 2,
      segments: 4,
      classes: ["base-unchanged", "copy", "noise"],
      // The tensor package's genesis recipe, shrunk to fit CI.
      genesis: { nEmbd: 32, nLayer: 1, nHead: 2, context: 32, steps: 120, batchSize: 8, seed: "ci-genesis" },
      round: {
        examples: 32,
        length: 32,
        train: { epochs: 3, batchSize: 8, lr: 2e-3, warmupSteps: 2, schedule: "constant" },
        seed: "ci-round",
      },
    });
    const reasons = r.verdicts.map(
      (v) => `${v.verdict.id}: ${v.verdict.reasons.map((x) => x.code).join(",")}`,
    );
    expect(r.honestRejected, reasons.join("\n")).toBe(0);
    for (const c of r.classes) {
      expect(c.rejected, `${c.name}\n${reasons.join("\n")}`).toBe(c.instances);
      expect(c.auroc).toBe(1);
    }
    const copies = r.verdicts.filter((v) => v.cls === "copy");
    for (const v of copies) expect(v.verdict.reasons.map((x) => x.code)).toContain("copy");
    const unchanged = r.verdicts.filter((v) => v.cls === "base-unchanged");
    for (const v of unchanged) expect(v.verdict.reasons.map((x) => x.code)).toContain("weights_unchanged");
    expect(r.replaysOk).toBe(2);
    expect(r.validateMs).toBeLessThan(r.trainMs);
  }, 120_000);
});
