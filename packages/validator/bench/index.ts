import type { BenchModule } from "@deepshard/protocol";
import adversaryBench from "./adversary.ts";

const validatorBench: BenchModule = async (ctx) => [...(await adversaryBench(ctx))];

export default validatorBench;
