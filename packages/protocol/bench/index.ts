/** Every benchmark of @deepshard/protocol, run in sequence: one import per topic, added to `modules`. */
import type { BenchModule, BenchRow } from "../src/bench.ts";
import codec from "./codec.ts";
import crypto from "./crypto.ts";
import host from "./host.ts";

const modules: BenchModule[] = [crypto, codec, host];

const bench: BenchModule = async (ctx) => {
  const rows: BenchRow[] = [];
  for (const run of modules) rows.push(...(await run(ctx)));
  return rows;
};

export default bench;
