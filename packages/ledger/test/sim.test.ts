/**
 * Deterministic simulation of the state machine: every seed runs blocks of random valid and
 * invalid operations of every kind, and the invariants are checked after every block.
 * `npm run sim` runs a longer version (SIM_SEEDS, SIM_BLOCKS, SIM_OPS).
 */

import { isDeepshardError } from "@deepshard/protocol";
import { describe, expect, it } from "vitest";
import { toHex } from "../src/state/hashing.ts";
import { checkInvariants } from "../src/state/invariants.ts";
import { type BlockInput, type BlockResult, type Ctx, StateMachine } from "../src/state/machine.ts";
import type { LedgerState } from "../src/state/tables.ts";
import { runSimulation } from "./sim/generator.ts";

const SEEDS = Number(process.env.SIM_SEEDS ?? 12);
const BLOCKS = Number(process.env.SIM_BLOCKS ?? 500);
const OPS = Number(process.env.SIM_OPS ?? 100);
const FIRST_SEED = Number(process.env.SIM_FIRST_SEED ?? 1);

/** The rules only the simulation can check: each charged transaction consumed exactly the next nonce. */
function checkNonces(prev: LedgerState, next: LedgerState, block: BlockInput, result: BlockResult): void {
  const expected = new Map<string, bigint>();
  block.txs.forEach((input, i) => {
    const signer = toHex(input.tx.signer);
    const r = result.txResults[i]!;
    const before = expected.get(signer) ?? prev.tables.accounts.get(signer)?.nonce ?? 0n;
    if (r.charged) {
      if (input.tx.payload.nonce !== before + 1n)
        throw new Error(`charged tx with nonce ${input.tx.payload.nonce}, expected ${before + 1n}`);
      expected.set(signer, before + 1n);
    } else if (r.code === "OK") {
      throw new Error("an accepted tx was not charged");
    }
  });
  for (const [signer, nonce] of expected) {
    if (next.tables.accounts.get(signer)?.nonce !== nonce)
      throw new Error(`nonce of ${signer} is not ${nonce}`);
  }
}

function checkAll(prev: LedgerState, next: LedgerState, block: BlockInput, result: BlockResult): void {
  checkInvariants(next, prev);
  checkNonces(prev, next, block, result);
}

describe(`simulation: ${SEEDS} seeds × ${BLOCKS} blocks × ${OPS} operations`, () => {
  const seeds = Array.from({ length: SEEDS }, (_, i) => FIRST_SEED + i);
  it.each(seeds)("seed %i keeps every invariant at every block", (seed) => {
    const { stats } = runSimulation({ seed, blocks: BLOCKS, opsPerBlock: OPS, onBlock: checkAll });
    expect(stats.txs).toBeGreaterThanOrEqual(BLOCKS * OPS);
    // Every kind of operation ran both successfully and unsuccessfully: the run is not vacuous.
    for (const type of [
      "transfer",
      "bond",
      "unbond",
      "data.submit",
      "data.vote",
      "training.commit",
      "training.reveal",
      "training.verdict",
      "weights.buy",
    ]) {
      expect(stats.byType[`${type}:ok`], `${type} ok`).toBeGreaterThan(0);
      expect(stats.byType[`${type}:fail`], `${type} fail`).toBeGreaterThan(0);
    }
    for (const code of [
      "TX_BAD_NONCE",
      "TX_WRONG_CHAIN",
      "TX_FEE_TOO_LOW",
      "TX_INSUFFICIENT_FUNDS",
      "TX_DUPLICATE",
    ]) {
      expect(stats.byCode[code], code).toBeGreaterThan(0);
    }
  });

  it("the same seed gives the same state root; another seed does not", () => {
    const blocks = Math.min(BLOCKS, 200);
    const a = runSimulation({ seed: 7, blocks, opsPerBlock: OPS });
    const b = runSimulation({ seed: 7, blocks, opsPerBlock: OPS });
    const c = runSimulation({ seed: 8, blocks, opsPerBlock: OPS });
    expect(b.rootChain).toBe(a.rootChain);
    expect(toHex(b.state.root)).toBe(toHex(a.state.root));
    expect(c.rootChain).not.toBe(a.rootChain);
  });

  it("rounds complete, data is accepted and rejected, validators get jailed and tombstoned", () => {
    const { state } = runSimulation({ seed: 3, blocks: 300, opsPerBlock: OPS });
    const t = state.tables;
    const meta = t.meta.get("meta")!;
    const statuses = new Set([...t.data.values()].map((d) => d.status));
    expect(statuses).toContain("accepted");
    expect(statuses).toContain("rejected");
    expect([...t.rounds.values()].some((r) => r.status === "completed")).toBe(true);
    expect(meta.weightsCount).toBeGreaterThan(1);
    expect(t.licenses.size).toBeGreaterThan(0);
    expect([...t.validators.values()].some((v) => v.tombstoned)).toBe(true);
    expect(meta.burned).toBeGreaterThan(0n);
  });
});

describe("a planted bug", () => {
  /** Mints without counting: exactly the accounting slip the supply check exists for. */
  class ForgetfulMint extends StateMachine {
    protected override mint(ctx: Ctx, to: string, amount: bigint): void {
      this.credit(ctx, to, amount);
    }
  }

  it("is caught by the invariant checker", () => {
    let caught: unknown;
    try {
      runSimulation({
        seed: 1,
        blocks: 20,
        opsPerBlock: 20,
        machine: new ForgetfulMint(),
        onBlock: checkAll,
      });
    } catch (err) {
      caught = err;
    }
    expect(isDeepshardError(caught, "STATE_INVARIANT")).toBe(true);
    expect((caught as Error).message).toMatch(/supply does not add up/);
  });
});
