/**
 * Validation of OpenAI request bodies. A field of the wrong type or out of range is a 400 naming
 * the field (`param`); fields this server cannot honour (n > 1, logprobs, echo, penalties, tools)
 * are a 400 that says so rather than being silently ignored; fields it does not know are ignored,
 * as clients send vendor extensions.
 */
import { randomInt } from "node:crypto";
import { badParam, OpenAIError } from "./errors.ts";

export interface ServeLimits {
  /** Largest request body (413 beyond). */
  maxBodyBytes: number;
  /** Longest prompt in tokens, after the chat template (400 context_length_exceeded beyond). */
  maxPromptTokens: number;
  /** Most new tokens one request may ask for (`max_tokens` above it is a 400). */
  maxTokens: number;
  /** Requests waiting behind the running one; more are a 429 with Retry-After. */
  maxQueue: number;
}

export const DEFAULT_LIMITS: Omit<ServeLimits, "maxPromptTokens"> = {
  maxBodyBytes: 1024 * 1024,
  maxTokens: 512,
  maxQueue: 16,
};

/** OpenAI's default for `/v1/completions` when `max_tokens` is absent. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;
const MAX_STOPS = 4;
const MAX_STOP_CHARS = 256;
const MAX_MESSAGES = 1024;

export interface SamplingRequest {
  model: string;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Given, or drawn at random (a run is replayable with the seed). */
  seed: number;
  stop: string[];
  stream: boolean;
  /** `stream_options.include_usage`: one more chunk with the usage before `[DONE]`. */
  includeUsage: boolean;
}

export interface CompletionRequest extends SamplingRequest {
  prompt: string;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatRequest extends SamplingRequest {
  messages: ChatMessage[];
}

type Body = Record<string, unknown>;

/** The body as a JSON object with a string `model`. */
export function parseBody(raw: Buffer): Body {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new OpenAIError(400, "invalid_json", "the request body is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new OpenAIError(400, "invalid_request", "the request body must be a JSON object");
  }
  const b = body as Body;
  if (b.model === undefined)
    throw badParam("model", "you must provide a model parameter", "missing_required");
  if (typeof b.model !== "string") throw badParam("model", "model must be a string", "invalid_type");
  return b;
}

export function parseCompletion(b: Body, limits: ServeLimits): CompletionRequest {
  let prompt = b.prompt;
  if (prompt === undefined) throw badParam("prompt", "you must provide a prompt", "missing_required");
  if (Array.isArray(prompt)) {
    if (prompt.length !== 1 || typeof prompt[0] !== "string") {
      throw badParam(
        "prompt",
        "prompt must be a string or an array of one string (batches and token ids are not supported)",
      );
    }
    prompt = prompt[0];
  }
  if (typeof prompt !== "string") throw badParam("prompt", "prompt must be a string", "invalid_type");
  unsupported(b, "echo", (v) => v === false, "echo is not supported");
  unsupported(b, "suffix", (v) => v === "", "suffix is not supported");
  unsupported(b, "best_of", (v) => v === 1, "best_of other than 1 is not supported");
  unsupported(b, "logprobs", () => false, "logprobs are not supported by this server");
  return { ...sampling(b, limits, "max_tokens", COMPLETION_DEFAULT_MAX_TOKENS), prompt };
}

export function parseChat(b: Body, limits: ServeLimits): ChatRequest {
  const raw = b.messages;
  if (raw === undefined) throw badParam("messages", "you must provide messages", "missing_required");
  if (!Array.isArray(raw)) throw badParam("messages", "messages must be an array", "invalid_type");
  if (raw.length === 0) throw badParam("messages", "messages must not be empty");
  if (raw.length > MAX_MESSAGES) throw badParam("messages", `at most ${MAX_MESSAGES} messages`);
  const messages = raw.map((m, i) => parseMessage(m, `messages[${i}]`));
  unsupported(b, "logprobs", (v) => v === false, "logprobs are not supported by this server");
  unsupported(b, "top_logprobs", () => false, "logprobs are not supported by this server");
  unsupported(
    b,
    "tools",
    (v) => Array.isArray(v) && v.length === 0,
    "tools are not supported by this server",
  );
  unsupported(b, "functions", () => false, "functions are not supported by this server");
  unsupported(
    b,
    "tool_choice",
    (v) => v === "none" || v === "auto",
    "tool_choice is not supported by this server",
  );
  unsupported(
    b,
    "response_format",
    (v) => typeof v === "object" && v !== null && (v as Body).type === "text",
    'only response_format {"type": "text"} is supported',
  );
  const key = b.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
  return { ...sampling(b, limits, key, limits.maxTokens), messages };
}

function parseMessage(m: unknown, at: string): ChatMessage {
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    throw badParam(at, `${at} must be an object with role and content`, "invalid_type");
  }
  const { role, content } = m as Body;
  let r: ChatMessage["role"];
  if (role === "system" || role === "developer") r = "system";
  else if (role === "user" || role === "assistant") r = role;
  else if (role === "tool" || role === "function") {
    throw badParam(`${at}.role`, `${role} messages are not supported by this server`);
  } else throw badParam(`${at}.role`, `${at}.role must be system, developer, user or assistant`);
  if (typeof content === "string") return { role: r, content };
  if (content === null && r === "assistant") return { role: r, content: "" };
  if (Array.isArray(content)) {
    const texts = content.map((part, j) => {
      const p = part as Body | null;
      if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string") {
        throw badParam(`${at}.content[${j}]`, "only text content parts are supported");
      }
      return p.text;
    });
    return { role: r, content: texts.join("") };
  }
  throw badParam(`${at}.content`, `${at}.content must be a string or an array of text parts`, "invalid_type");
}

function sampling(b: Body, limits: ServeLimits, maxKey: string, defaultMax: number): SamplingRequest {
  const n = num(b, "n", 1, 128, true);
  if (n !== undefined && n !== 1) throw badParam("n", "only n = 1 is supported by this server");
  for (const key of ["presence_penalty", "frequency_penalty"]) {
    unsupported(b, key, (v) => v === 0, `${key} other than 0 is not supported by this server`);
  }
  unsupported(
    b,
    "logit_bias",
    (v) => typeof v === "object" && v !== null && Object.keys(v).length === 0,
    "logit_bias is not supported by this server",
  );
  const stream = b.stream ?? false;
  if (typeof stream !== "boolean") throw badParam("stream", "stream must be a boolean", "invalid_type");
  let includeUsage = false;
  const so = b.stream_options;
  if (so !== undefined && so !== null) {
    if (typeof so !== "object" || Array.isArray(so)) {
      throw badParam("stream_options", "stream_options must be an object", "invalid_type");
    }
    const iu = (so as Body).include_usage ?? false;
    if (typeof iu !== "boolean") {
      throw badParam("stream_options.include_usage", "include_usage must be a boolean", "invalid_type");
    }
    if (!stream) throw badParam("stream_options", "stream_options is only allowed with stream: true");
    includeUsage = iu;
  }
  const maxTokens =
    num(b, maxKey, 1, Number.MAX_SAFE_INTEGER, true) ?? Math.min(defaultMax, limits.maxTokens);
  if (maxTokens > limits.maxTokens) {
    throw badParam(maxKey, `${maxKey} is ${maxTokens}; this server allows at most ${limits.maxTokens}`);
  }
  const out: SamplingRequest = {
    model: b.model as string,
    maxTokens,
    seed: num(b, "seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true) ?? randomInt(2 ** 47),
    stop: stops(b.stop),
    stream,
    includeUsage,
  };
  const temperature = num(b, "temperature", 0, 2, false);
  const topP = num(b, "top_p", 0, 1, false);
  // top_k is not OpenAI's, but vLLM and llama.cpp accept it and our sampler has it.
  const topK = num(b, "top_k", 1, 1_000_000, true);
  if (temperature !== undefined) out.temperature = temperature;
  if (topP !== undefined) out.topP = topP;
  if (topK !== undefined) out.topK = topK;
  return out;
}

function stops(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
    throw badParam("stop", "stop must be a string or an array of strings", "invalid_type");
  }
  if (list.length > MAX_STOPS) throw badParam("stop", `at most ${MAX_STOPS} stop sequences`);
  if (list.some((s: string) => s.length === 0 || s.length > MAX_STOP_CHARS)) {
    throw badParam("stop", `a stop sequence has 1 to ${MAX_STOP_CHARS} characters`);
  }
  return list as string[];
}

/** A number field in [min, max]; null counts as absent, as OpenAI's SDKs send it. */
function num(b: Body, key: string, min: number, max: number, integer: boolean): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw badParam(key, `${key} must be ${integer ? "an integer" : "a number"}`, "invalid_type");
  }
  if (v < min || v > max) throw badParam(key, `${key} must be between ${min} and ${max}`);
  return v;
}

/** A field this server cannot honour: allowed only absent, null, or at its neutral value. */
function unsupported(b: Body, key: string, neutral: (v: unknown) => boolean, message: string): void {
  const v = b[key];
  if (v === undefined || v === null || neutral(v)) return;
  throw badParam(key, message, "unsupported_parameter");
}
