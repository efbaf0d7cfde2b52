/** Every benchmark of @deepshard/ledger, run in sequence: one import per topic, added to `modules`. */
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import consensus from "./consensus.ts";
import network from "./network.ts";
import state from "./state.ts";

const modules: BenchModule[] = [consensus, state, network];

const bench: BenchModule = async (ctx) => {
  const rows: BenchRow[] = [];
  for (const run of modules) rows.push(...(await run(ctx)));
  return rows;
};

export default bench;
