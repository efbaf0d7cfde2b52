import type { Command } from "commander";
import { registerDevnet } from "./devnet/index.ts";
import { registerGenerate } from "./generate/index.ts";
import { registerInference } from "./inference/index.ts";
import { registerInformant } from "./informant/index.ts";
import { registerInit } from "./init/index.ts";
import { registerKeys } from "./keys/index.ts";
import { registerLedger } from "./ledger/index.ts";
import { registerModel } from "./model/index.ts";
import { registerNode } from "./node/index.ts";
import { registerTrainer } from "./trainer/index.ts";
import { registerValidator } from "./validator/index.ts";
import { registerWeights } from "./weights/index.ts";

/** Every subcommand registers itself on the program; add new ones here. */
export const commands: Array<(program: Command) => void> = [
  registerKeys,
  registerModel,
  registerGenerate,
  registerInit,
  registerNode,
  registerLedger,
  registerValidator,
  registerInformant,
  registerTrainer,
  registerWeights,
  registerDevnet,
  registerInference,
];
