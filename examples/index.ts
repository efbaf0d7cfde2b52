export { type ByzantineResult, byzantineReport, runByzantine } from "./byzantine-trainer/index.ts";
export { type GalileoResult, galileoReport, runGalileo } from "./galileo/index.ts";
export { startWorld, type World } from "./lib/world.ts";
export { runScript, type ScriptResult } from "./script.ts";
