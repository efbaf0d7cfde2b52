import type { Command } from "commander";
import { nonNegativeInt, positiveInt } from "../model/parse.ts";
import { addApiOptions } from "../node/common.ts";
import type { ServeCliOptions } from "./serve.ts";

/** `deepshard inference serve`: the model over OpenAI's HTTP API. */
export function registerInference(program: Command): void {
  const inference = program.command("inference").description("use the model: an OpenAI-compatible server");
  addApiOptions(
    inference
      .command("serve")
      .description(
        "serve a model over OpenAI's HTTP API (/v1/models, /v1/completions, /v1/chat/completions, streaming): " +
          "a local folder (--model), else the canonical weights the local node's inference role fetched",
      )
      .option("--model <dir>", "serve this model folder (config.json + safetensors)")
      .option("--weights-id <id>", "without --model: which fetched weights (default: the canonical weights)")
      .option("--port <n>", "port to listen on (0 picks a free one)", nonNegativeInt, 26681)
      .option(
        "--host <addr>",
        "address to bind; anything but loopback exposes the model unauthenticated",
        "127.0.0.1",
      )
      .option(
        "--no-follow",
        "serving the canonical weights: keep serving these when a training round makes new ones",
      )
      .option(
        "--follow-every <seconds>",
        "serving the canonical weights: how often to ask the node whether they changed",
        positiveInt,
        10,
      )
      .option("--name <id>", "the model id clients pass (default: the weights id)")
      .option("--max-tokens <n>", "most new tokens a request may ask for", positiveInt, 512)
      .option(
        "--max-prompt-tokens <n>",
        "longest prompt in tokens (default: the model's context − 1)",
        positiveInt,
      )
      .option(
        "--queue <n>",
        "requests that may wait behind the running one (more get 429)",
        nonNegativeInt,
        16,
      )
      .option("--backend <name>", "tfjs backend: auto, node-gpu, node, wasm or cpu (else DEEPSHARD_BACKEND)"),
  )
    .addHelpText(
      "after",
      "\nWith --json one line is printed once listening: " +
        '{"url", "model", "weightsId", "host", "port", "dir", "backend", "limits", "following"}.' +
        "\nServing the canonical weights (no --model, no --weights-id), it switches to new ones between" +
        "\ngenerations once this node's account holds a license for them, and prints" +
        '\n{"event": "switched", "model", "weightsId", "dir"} (the old model id stays accepted as a name).' +
        "\nChat messages are rendered as 'System: …', 'User: …' lines and the model continues after 'Assistant:'." +
        "\n\nExamples:\n  deepshard inference serve --model ./genesis --port 8000" +
        "\n  curl http://127.0.0.1:8000/v1/completions -H 'content-type: application/json' \\" +
        '\n    -d \'{"model": "<id from /v1/models>", "prompt": "A week has", "max_tokens": 20}\'' +
        "\n  deepshard weights buy && deepshard inference serve   # the network's canonical weights",
    )
    .action(async (options: ServeCliOptions) => {
      const { serveHandler } = await import("./serve.ts");
      process.exitCode = await serveHandler(options);
    });
}
