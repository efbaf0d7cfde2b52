import type { Command } from "commander";
import { registerKeys } from "./keys/index.ts";

/** Every subcommand registers itself on the program; add new ones here. */
export const commands: Array<(program: Command) => void> = [registerKeys];
