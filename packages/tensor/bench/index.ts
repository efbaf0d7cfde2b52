/** Every benchmark of @deepshard/tensor, run in sequence: one import per topic, added to `modules`. */
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import safetensors from "./safetensors.ts";

const modules: BenchModule[] = [safetensors];

const bench: BenchModule = async (ctx) => {
  const rows: BenchRow[] = [];
  for (const run of modules) rows.push(...(await run(ctx)));
  return rows;
};

export default bench;
