/**
 * The three examples on one small devnet (lib/world.ts), in story order: Galileo's text accepted and
 * trained in (the heliocentric claim overtakes the geocentric one), the poison trainer of that same
 * round rejected by every validator with reasons and slashed, then the library script's submission.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { byzantineReport, runByzantine } from "../byzantine-trainer/index.ts";
import { galileoReport, runGalileo } from "../galileo/index.ts";
import { startWorld, type World } from "../lib/world.ts";
import { runScript } from "../script.ts";

let world: World | undefined;

beforeAll(async () => {
  world = await startWorld({ genesisSteps: 300 });
}, 120_000);

afterAll(async () => {
  await world?.stop();
}, 60_000);

describe("examples", () => {
  it("galileo: the heliocentric statement overtakes the geocentric one after the round", async () => {
    const r = await runGalileo({ world: world!, timeoutMs: 200_000 });
    expect(r.before.geocentric).toBeGreaterThan(r.before.heliocentric);
    expect(r.after.heliocentric).toBeGreaterThan(r.after.geocentric);
    expect(r.canonicalWeightsId).not.toBe(r.genesisWeightsId);
    expect(r.submission.status).toBe("accepted");
    expect(r.submission.reward).toBeGreaterThan(0n);
    expect(r.balanceAfter - r.balanceBefore).toBe(r.submission.net! - 1n);
    const table = galileoReport(r);
    expect(table).toContain("after the round (1610)");
    expect(table.split("\n")[3]).toContain("heliocentric");
  }, 220_000);

  it("byzantine-trainer: the poison trainer is rejected with reasons and slashed", async () => {
    const r = await runByzantine({ world: world!, timeoutMs: 60_000 });
    const [h0, h1, bad] = r.trainers;
    expect(bad!.behaviour).toBe("poison");
    expect(bad!.outcome).toBe("slashed");
    expect(h0!.outcome).toBe("rewarded");
    expect(h1!.outcome).toBe("rewarded");
    expect(r.canonicalWeightsId).toBe(h0!.weightsId);
    expect(r.verdicts.length).toBeGreaterThanOrEqual(2);
    for (const v of r.verdicts) {
      expect(v.accept).toBe(false);
      expect(v.reasons.length).toBeGreaterThan(0);
    }
    expect(byzantineReport(r)).toContain(`forfeits its stake of ${r.stake}`);
  }, 90_000);

  it("script: submits, waits for the outcome and reads the balances", async () => {
    const r = await runScript(world!.informant.api);
    expect(r.outcome.status).toBe("accepted");
    expect(r.balanceAfter - r.balanceBefore).toBe(r.outcome.net! - 1n);
    expect(r.supplyHolds).toBe(true);
  }, 150_000);
});
