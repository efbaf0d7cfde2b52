import { setImmediate as nextTurn } from "node:timers/promises";
import type { CausalLM, FinishReason, Tokenizer } from "@deepshard/tensor";
import { generateTokens } from "@deepshard/tensor";
import { StopText } from "../../cmds/generate/stop.ts";
import type { SamplingRequest } from "./requests.ts";

export interface Completion {
  text: string;
  completionTokens: number;
  finishReason: FinishReason;
}

/**
 * Generates for one request, calling `onText` with each piece of text that is safe to send: the
 * stop strings are handled as `deepshard generate` does, so no part of one is ever sent, and a
 * stop token ends the text without being printed. The event loop gets a turn between tokens, so
 * other requests are read and queued, and a client that goes away (`signal`) is noticed.
 */
export async function complete(
  model: CausalLM,
  tokenizer: Tokenizer,
  promptTokens: number[],
  req: SamplingRequest,
  stops: readonly string[],
  signal: AbortSignal,
  onText: (piece: string) => void,
): Promise<Completion> {
  const stopTokens = model.config.eosTokenIds.length > 0 ? model.config.eosTokenIds : [tokenizer.eosTokenId];
  const stopText = new StopText(stops);
  const decode = tokenizer.streamDecoder();
  const it = generateTokens(model, promptTokens, {
    maxNewTokens: req.maxTokens,
    seed: req.seed,
    stopTokens,
    signal,
    ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    ...(req.topK === undefined ? {} : { topK: req.topK }),
    ...(req.topP === undefined ? {} : { topP: req.topP }),
  });
  let text = "";
  let count = 0;
  const send = (piece: string) => {
    if (!piece) return;
    text += piece;
    onText(piece);
  };
  try {
    for (;;) {
      await nextTurn();
      const next = await it.next();
      if (next.done) {
        send(stopText.flush());
        return { text, completionTokens: count, finishReason: next.value.finishReason };
      }
      count++;
      if (stopTokens.includes(next.value)) continue;
      const piece = stopText.push(decode(next.value));
      send(piece.text);
      if (piece.stopped) return { text, completionTokens: count, finishReason: "stop" };
    }
  } finally {
    await it.return({ tokens: [], finishReason: "stop" });
  }
}
