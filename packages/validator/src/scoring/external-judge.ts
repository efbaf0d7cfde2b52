/**
 * An optional external judge: any model behind an OpenAI-compatible `/v1/chat/completions` endpoint
 * rates a text on the criteria a heuristic cannot judge well. Deadlines and retries are bounded, and
 * callers fall back to the heuristics when the judge fails, so scoring always completes.
 */
import { DeepshardError } from "@deepshard/protocol";
import { request } from "undici";

export type JudgedCriterion = "alignment" | "truthfulness" | "objectivity";
export const JUDGED_CRITERIA: readonly JudgedCriterion[] = ["alignment", "truthfulness", "objectivity"];

export type ExternalJudgeErrorCode = "UNREACHABLE" | "TIMEOUT" | "HTTP_ERROR" | "BAD_RESPONSE";
export class ExternalJudgeError extends DeepshardError<ExternalJudgeErrorCode> {
  override name = "ExternalJudgeError";
}

export interface ExternalJudgeOptions {
  /** Base URL of the API, e.g. `http://127.0.0.1:8080/v1`. */
  baseUrl: string;
  model: string;
  apiKey?: string | undefined;
  /** Deadline of one attempt, in ms (default 15,000). */
  timeoutMs?: number | undefined;
  /** Attempts after the first, on network errors, 429 and 5xx (default 2). */
  retries?: number | undefined;
  /** Pause before the first retry, doubled each time (default 250 ms). */
  backoffMs?: number | undefined;
  /** Longest text sent, in characters (default 8,000); longer texts are cut. */
  maxChars?: number | undefined;
}

/** Fractions in [0, 1] per judged criterion. */
export type JudgeScores = Record<JudgedCriterion, number>;

const RUBRIC = `You are a data reviewer for a network that trains a shared language model.
Rate the user's text on three criteria, each an integer from 0 to 10:
- alignment: does it respect universal human values (no incitement to harm, no dehumanisation)? 10 = fully.
- truthfulness: are its factual claims empirically true or well supported? 10 = fully. An unpopular claim can be true.
- objectivity: is it objective (verifiable statements) rather than subjective (opinion, emotion)? 10 = fully objective.
Answer with only a JSON object: {"alignment": n, "truthfulness": n, "objectivity": n}.`;

export class ExternalJudge {
  readonly #options: {
    baseUrl: string;
    model: string;
    apiKey: string | undefined;
    timeoutMs: number;
    retries: number;
    backoffMs: number;
    maxChars: number;
  };

  constructor(options: ExternalJudgeOptions) {
    this.#options = {
      baseUrl: options.baseUrl.replace(/\/+$/, ""),
      model: options.model,
      apiKey: options.apiKey,
      timeoutMs: options.timeoutMs ?? 15_000,
      retries: options.retries ?? 2,
      backoffMs: options.backoffMs ?? 250,
      maxChars: options.maxChars ?? 8_000,
    };
  }

  /** Rates `text`; throws a ExternalJudgeError after the last attempt fails. */
  async rate(text: string, signal?: AbortSignal): Promise<JudgeScores> {
    const { retries, backoffMs } = this.#options;
    let last: ExternalJudgeError | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await sleep(backoffMs * 2 ** (attempt - 1), signal);
      try {
        return await this.#attempt(text, signal);
      } catch (err) {
        if (!(err instanceof ExternalJudgeError)) throw err;
        last = err;
        const retryable =
          err.code === "UNREACHABLE" ||
          err.code === "TIMEOUT" ||
          (err.code === "HTTP_ERROR" && ((err.meta.status as number) >= 500 || err.meta.status === 429));
        if (!retryable || signal?.aborted) break;
      }
    }
    throw last!;
  }

  async #attempt(text: string, signal?: AbortSignal): Promise<JudgeScores> {
    const { baseUrl, model, apiKey, timeoutMs, maxChars } = this.#options;
    const url = `${baseUrl}/chat/completions`;
    const deadline = AbortSignal.timeout(timeoutMs);
    const body = JSON.stringify({
      model,
      temperature: 0,
      messages: [
        { role: "system", content: RUBRIC },
        { role: "user", content: text.slice(0, maxChars) },
      ],
    });
    let status: number;
    let raw: string;
    try {
      const res = await request(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
        },
        body,
        signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      });
      status = res.statusCode;
      raw = await res.body.text();
    } catch (cause) {
      if (deadline.aborted) {
        throw new ExternalJudgeError("TIMEOUT", `judge at ${baseUrl} did not answer within ${timeoutMs} ms`, {
          meta: { url },
        });
      }
      throw new ExternalJudgeError("UNREACHABLE", `judge at ${baseUrl} is unreachable`, {
        cause,
        meta: { url },
      });
    }
    if (status < 200 || status >= 300) {
      throw new ExternalJudgeError("HTTP_ERROR", `judge at ${baseUrl} answered HTTP ${status}`, {
        details: raw.slice(0, 300),
        meta: { url, status },
      });
    }
    return parseJudgeAnswer(raw);
  }
}

/** Reads the scores out of a chat completion response: the first JSON object in the message content. */
export function parseJudgeAnswer(raw: string): JudgeScores {
  let content: unknown;
  try {
    content = (JSON.parse(raw) as { choices?: Array<{ message?: { content?: unknown } }> }).choices?.[0]
      ?.message?.content;
  } catch (cause) {
    throw new ExternalJudgeError("BAD_RESPONSE", "judge response is not JSON", {
      cause,
      details: raw.slice(0, 300),
    });
  }
  if (typeof content !== "string") {
    throw new ExternalJudgeError("BAD_RESPONSE", "judge response has no message content", {
      details: raw.slice(0, 300),
    });
  }
  const match = content.match(/\{[^{}]*\}/);
  let scores: Record<string, unknown> = {};
  try {
    scores = match ? (JSON.parse(match[0]) as Record<string, unknown>) : {};
  } catch {
    // reported below as missing scores
  }
  const out = {} as JudgeScores;
  for (const c of JUDGED_CRITERIA) {
    const v = scores[c];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 10) {
      throw new ExternalJudgeError("BAD_RESPONSE", `judge gave no valid score for ${c} (0 to 10)`, {
        details: content.slice(0, 300),
      });
    }
    out[c] = v / 10;
  }
  return out;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
