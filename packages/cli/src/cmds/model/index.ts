import type { Command } from "commander";
import { WEIGHTS_CHUNK_SIZE } from "../../node/weights-id.ts";
import type { EvalCliOptions } from "./eval.ts";
import type { GenesisCliOptions } from "./genesis.ts";
import type { InspectCliOptions } from "./inspect.ts";
import { nonNegativeInt, positiveInt, positiveNumber } from "./parse.ts";

const WEIGHTS_ID_HELP =
  "The weights id is the one the network gives the folder: the Merkle root of config.json then the\n" +
  `weights files, in ${WEIGHTS_CHUNK_SIZE / 1024} KiB chunks (as \`deepshard init --model\`, a devnet's genesis and\n` +
  "`inference serve --model` compute it).";

const BACKEND_HELP =
  "tfjs backend: auto, node-gpu, node, wasm or cpu (else DEEPSHARD_BACKEND, else the best present)";

/**
 * `deepshard model eval|inspect|genesis`. Handlers are imported when a command runs, so other
 * commands do not pay for loading tfjs.
 */
export function registerModel(program: Command): void {
  const model = program
    .command("model")
    .description("inspect, evaluate and create models (Hugging Face directories: config.json + safetensors)");

  model
    .command("eval")
    .description("mean next-token cross-entropy and perplexity of a model on a text or token id file")
    .argument("<dir>", "model directory")
    .option("--text <file>", 'plain text (one document), or JSONL with a "text" field per line; - for stdin')
    .option(
      "--token-ids <file>",
      "token ids: a JSON array of arrays of integers, or one sequence per line (ids separated by spaces); - for stdin",
    )
    .option("--batch-size <n>", "sequences per forward pass", positiveInt, 8)
    .option("--backend <name>", BACKEND_HELP)
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nSequences longer than the model's context are scored in consecutive windows." +
        "\n\nExample:\n  deepshard model eval ./genesis --text held-out.jsonl --json",
    )
    .action(async (dir: string, options: EvalCliOptions) => {
      const { evalHandler } = await import("./eval.ts");
      await evalHandler(dir, options);
    });

  model
    .command("inspect")
    .description("print a model's config, parameter count and weights id (Merkle root of its chunks)")
    .argument("<dir>", "model directory")
    .option("--json", "print JSON")
    .addHelpText("after", `\n${WEIGHTS_ID_HELP}\n\nExample:\n  deepshard model inspect ./genesis --json`)
    .action(async (dir: string, options: InspectCliOptions) => {
      const { inspectHandler } = await import("./inspect.ts");
      await inspectHandler(dir, options);
    });

  model
    .command("genesis")
    .description(
      "pretrain the network's genesis model (a small byte-level GPT-2) on a generated corpus and write it",
    )
    .argument("<dir>", "where to write config.json and model.safetensors")
    .option("--steps <n>", "optimizer steps (default: the recipe's)", positiveInt)
    .option("--seed <text>", "seeds initialisation, corpus and data order (default: the recipe's)")
    .option("--batch-size <n>", "rows per step", positiveInt)
    .option("--context <n>", "context length in bytes", positiveInt)
    .option("--embd <n>", "hidden size", positiveInt)
    .option("--layers <n>", "transformer layers", positiveInt)
    .option("--heads <n>", "attention heads", positiveInt)
    .option("--lr <rate>", "peak learning rate", positiveNumber)
    .option(
      "--progress-interval <ms>",
      "least time between progress lines when stderr is not a terminal",
      nonNegativeInt,
      2000,
    )
    .option("--force", "overwrite a model already in <dir>")
    .option("--backend <name>", `${BACKEND_HELP}; only single-threaded wasm is bit-for-bit reproducible`)
    .option("--json", "print JSON (and no progress)")
    .addHelpText(
      "after",
      `\n${WEIGHTS_ID_HELP}\n\nExample:\n  deepshard model genesis ./genesis --backend wasm`,
    )
    .action(async (dir: string, options: GenesisCliOptions) => {
      const { genesisHandler } = await import("./genesis.ts");
      await genesisHandler(dir, options);
    });
}
