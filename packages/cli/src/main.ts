import { DeepshardError } from "@deepshard/protocol";
import { Command, CommanderError } from "commander";
import { commands } from "./cmds/index.ts";

/** Builds the `deepshard` program: one subcommand per entry of `commands`. */
export function buildProgram(): Command {
  const program = new Command("deepshard")
    .description(
      "Deepshard: a peer-to-peer network that keeps one shared language model alive and improving.\n" +
        "Informants stake on data, validators reach consensus and judge, trainers fine-tune, inference nodes serve.",
    )
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

/**
 * Runs the CLI. Expected user errors print one line (`error: <what> (<details>)`) without a stack
 * trace and exit 1; DEEPSHARD_DEBUG=1 adds the causes and the stack.
 */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof DeepshardError) {
      process.stderr.write(`${formatUserError(err)}\n`);
      if (process.env.DEEPSHARD_DEBUG) process.stderr.write(`${err.stack}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

/** One line: the short message, then the details in parentheses, white space folded. */
export function formatUserError(err: DeepshardError): string {
  const details = err.details?.replace(/\s+/g, " ").trim();
  return `error: ${err.shortMessage}${details ? ` (${details})` : ""}`;
}
