import type { Command } from "commander";
import { collect, nonNegativeInt, nonNegativeNumber, positiveInt, probability } from "../model/parse.ts";
import type { GenerateCliOptions } from "./handler.ts";

/** `deepshard generate`: stream a completion from a local model. */
export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("stream a completion of a prompt from a local model (KV cache, seeded sampling)")
    .argument("[prompt]", "the prompt text (else read from stdin)")
    .requiredOption("--model <dir>", "model directory (config.json + safetensors)")
    .option("--max-tokens <n>", "most new tokens", positiveInt, 64)
    .option(
      "--temperature <t>",
      "sampling temperature; 0 picks the most likely token (default 1)",
      nonNegativeNumber,
    )
    .option("--top-k <k>", "sample among the k most likely tokens", positiveInt)
    .option("--top-p <p>", "sample among the most likely tokens whose probability adds up to p", probability)
    .option(
      "--seed <n>",
      "seeds sampling: the same seed gives the same text (default: random, reported)",
      nonNegativeInt,
    )
    .option("--stop <text>", "end the completion before this text (repeatable)", collect)
    .option("--prompt-ids <ids>", "the prompt as token ids separated by spaces (models without a tokenizer)")
    .option("--backend <name>", "tfjs backend: auto, node-gpu, node, wasm or cpu (else DEEPSHARD_BACKEND)")
    .option("--json", "print JSON lines: one per token, then a final summary")
    .addHelpText(
      "after",
      '\nWith --json each generated token prints {"token": id, "text": printed text}, then one line' +
        '\n{"done": true, "text", "tokens", "finishReason", "seed", "backend", "tokensPerSecond", ...}.' +
        "\nWithout --json the text streams to stdout and a summary line goes to stderr." +
        '\n\nExample:\n  deepshard generate --model ./genesis --seed 7 --max-tokens 40 --stop "." "A week has"',
    )
    .action(async (prompt: string | undefined, options: GenerateCliOptions) => {
      const { generateHandler } = await import("./handler.ts");
      await generateHandler(prompt, options);
    });
}
