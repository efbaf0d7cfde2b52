/** Every benchmark of @deepshard/tensor, run in sequence: one import per topic, added to `modules`. */
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import generate from "./generate.ts";
import safetensors from "./safetensors.ts";
import train from "./train.ts";

const modules: BenchModule[] = [safetensors, train, generate];

const bench: BenchModule = async (ctx) => {
  const rows: BenchRow[] = [];
  for (const run of modules) rows.push(...(await run(ctx)));
  return rows;
};

export default bench;
