/** Every benchmark of @deepshard/cli, run in sequence: one import per topic, added to `modules`. */
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import api from "./api.ts";
import blobs from "./blobs.ts";
import data from "./data.ts";
import weightsValidator from "./weights-validator.ts";

const modules: BenchModule[] = [blobs, api, data, weightsValidator];

const bench: BenchModule = async (ctx) => {
  const rows: BenchRow[] = [];
  for (const run of modules) rows.push(...(await run(ctx)));
  return rows;
};

export default bench;
