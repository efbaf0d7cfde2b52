/**
 * State machine and store throughput: simulated blocks of 100 random transactions (valid and
 * invalid) are generated first, then only their execution (with state roots) is timed; then the
 * same blocks are committed to LevelDB, one fsynced batch each.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import { StateMachine } from "../src/state/machine.ts";
import { LevelDb } from "../src/store/db.ts";
import { LedgerStore } from "../src/store/ledger-store.ts";
import { makeChain } from "../test/sim/chain.ts";

const bench: BenchModule = async (ctx) => {
  const blocks = ctx.quick ? 50 : 300;
  const ops = 100;
  const { genesis, blocks: chain } = makeChain(99, blocks, ops);
  const txs = chain.reduce((n, b) => n + b.input.txs.length, 0);
  const machine = new StateMachine();
  const times: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    let state = genesis;
    const t0 = performance.now();
    for (const b of chain) state = machine.applyBlock(state, b.input).state;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const applyMs = times[1]!;
  ctx.log(`state machine: ${blocks} blocks, ${txs} txs in ${applyMs.toFixed(0)} ms`);

  const dir = await mkdtemp(join(tmpdir(), "ds-bench-store-"));
  let commitMs: number;
  try {
    const store = await LedgerStore.open(await LevelDb.open(dir));
    await store.init(genesis);
    const t0 = performance.now();
    for (const b of chain) await store.commit(b.input.height, b.bytes, b.result.changes, b.result.state.root);
    commitMs = performance.now() - t0;
    const t1 = performance.now();
    await store.loadState();
    ctx.log(
      `store: ${blocks} commits in ${commitMs.toFixed(0)} ms, state loaded in ${(performance.now() - t1).toFixed(0)} ms`,
    );
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const rows: BenchRow[] = [
    {
      package: "ledger",
      metric: "state machine txs/s (100-tx simulated blocks, roots included)",
      value: Math.round((txs / applyMs) * 1000),
      unit: "tx/s",
    },
    {
      package: "ledger",
      metric: "state machine block time (100 txs)",
      value: Number((applyMs / blocks).toFixed(3)),
      unit: "ms",
    },
    {
      package: "ledger",
      metric: "LevelDB block commits/s (one fsynced batch each)",
      value: Math.round((blocks / commitMs) * 1000),
      unit: "blocks/s",
    },
  ];
  return rows;
};

export default bench;
