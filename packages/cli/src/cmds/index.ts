import type { Command } from "commander";
import { registerGenerate } from "./generate/index.ts";
import { registerKeys } from "./keys/index.ts";
import { registerModel } from "./model/index.ts";

/** Every subcommand registers itself on the program; add new ones here. */
export const commands: Array<(program: Command) => void> = [registerKeys, registerModel, registerGenerate];
