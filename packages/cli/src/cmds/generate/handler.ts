import { randomInt } from "node:crypto";
import { text as readStream } from "node:stream/consumers";
import { DeepshardError } from "@deepshard/protocol";
import type { FinishReason, Tokenizer } from "@deepshard/tensor";
import { generateTokens, tokenizerFor } from "@deepshard/tensor";
import { jsonReplacer } from "../../util/output.ts";
import { checkVocab, parseTokenIds } from "../model/inputs.ts";
import type { BackendCliOptions } from "../model/load.ts";
import { openModel } from "../model/load.ts";
import { StopText } from "./stop.ts";

export interface GenerateCliOptions extends BackendCliOptions {
  model: string;
  maxTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
  promptIds?: string;
  json?: boolean;
}

/**
 * Streams a completion to stdout as tokens arrive. With --json, one JSON object per line: a
 * `{"token", "text"}` event per generated token (text: what was printed for it), then a final
 * `{"done": true, "text", "tokens", "finishReason", "seed", ...}` with the whole completion.
 */
export async function generateHandler(
  prompt: string | undefined,
  options: GenerateCliOptions,
): Promise<void> {
  if (prompt !== undefined && options.promptIds !== undefined) {
    throw new DeepshardError("USAGE", "give either a text prompt or --prompt-ids, not both");
  }
  if (options.promptIds !== undefined && options.stop?.length) {
    throw new DeepshardError("USAGE", "--stop needs a text prompt (with --prompt-ids there is no text)");
  }
  if (options.stop?.includes("")) throw new DeepshardError("USAGE", "--stop needs a non-empty text");
  const promptText = options.promptIds === undefined ? (prompt ?? (await promptFromStdin())) : undefined;
  // An unseeded run picks its seed at random and reports it, so any run can be replayed.
  const seed = options.seed ?? randomInt(2 ** 47);
  const { model, backend } = await openModel(options.model, options);
  try {
    let tokenizer: Tokenizer | undefined;
    let promptTokens: number[];
    if (promptText === undefined) {
      const rows = parseTokenIds(options.promptIds!, "--prompt-ids");
      if (rows.length !== 1)
        throw new DeepshardError("USAGE", "--prompt-ids takes one sequence of token ids");
      checkVocab(rows, model.config.vocabSize, "--prompt-ids");
      promptTokens = rows[0]!;
    } else {
      tokenizer = tokenizerFor(model.config);
      promptTokens = tokenizer.encode(promptText);
    }
    if (promptTokens.length === 0) throw new DeepshardError("INPUT_EMPTY", "the prompt is empty");
    const stopTokens =
      model.config.eosTokenIds.length > 0
        ? model.config.eosTokenIds
        : tokenizer
          ? [tokenizer.eosTokenId]
          : [];
    const stopText = new StopText(options.stop ?? []);
    const decode = tokenizer?.streamDecoder();
    const emit = (event: Record<string, unknown>, human: string) => {
      if (options.json) process.stdout.write(`${JSON.stringify(event, jsonReplacer)}\n`);
      else if (human) process.stdout.write(human);
    };

    const started = performance.now();
    const tokens: number[] = [];
    let text = "";
    let finishReason: FinishReason | undefined;
    const it = generateTokens(model, promptTokens, {
      maxNewTokens: options.maxTokens,
      seed,
      stopTokens,
      ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
      ...(options.topK === undefined ? {} : { topK: options.topK }),
      ...(options.topP === undefined ? {} : { topP: options.topP }),
    });
    // A reader that goes away (`| head`) ends generation quietly, as with any Unix filter.
    const ignoreClosedPipe = (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") throw err;
    };
    process.stdout.on("error", ignoreClosedPipe);
    while (finishReason === undefined) {
      if (process.stdout.destroyed) {
        await it.return({ tokens, finishReason: "stop" });
        return;
      }
      const next = await it.next();
      if (next.done) {
        finishReason = next.value.finishReason;
        break;
      }
      const id = next.value;
      tokens.push(id);
      if (!decode) {
        emit({ token: id }, `${tokens.length > 1 ? " " : ""}${id}`);
        continue;
      }
      const piece = stopTokens.includes(id) ? { text: "", stopped: false } : stopText.push(decode(id));
      text += piece.text;
      emit({ token: id, text: piece.text }, piece.text);
      if (piece.stopped) {
        finishReason = "stop";
        await it.return({ tokens, finishReason });
      }
    }
    const tail = stopText.flush();
    text += tail;
    const seconds = (performance.now() - started) / 1000;
    const summary = {
      done: true,
      ...(tokenizer ? { text } : {}),
      tokens: tokens.length,
      ...(tokenizer ? {} : { tokenIds: tokens }),
      promptTokens: promptTokens.length,
      finishReason,
      seed,
      backend: backend.name,
      tokensPerSecond: tokens.length / seconds,
    };
    if (options.json) {
      emit(summary, "");
      return;
    }
    if (tail) process.stdout.write(tail);
    if (process.stdout.isTTY) process.stdout.write("\n");
    process.stderr.write(
      `[${tokens.length} tokens in ${seconds.toFixed(2)} s, ${summary.tokensPerSecond.toFixed(1)} tok/s, ` +
        `finish ${finishReason}, seed ${seed}, backend ${backend.name}]\n`,
    );
  } finally {
    model.dispose();
  }
}

async function promptFromStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new DeepshardError("USAGE", "give a prompt", {
      details:
        'deepshard generate --model <dir> "prompt" (or pipe it on stdin, or --prompt-ids for token ids)',
    });
  }
  return readStream(process.stdin);
}
