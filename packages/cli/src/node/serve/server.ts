/**
 * An OpenAI-compatible HTTP server for one model: `GET /v1/models`, `GET /v1/models/{id}`,
 * `POST /v1/completions` and `POST /v1/chat/completions`, answered in OpenAI's wire format, with
 * server-sent events for `stream: true` (`data: {chunk}` lines, then `data: [DONE]`), so existing
 * OpenAI clients work unchanged. Every error is OpenAI's JSON shape. One generation runs at a time;
 * others queue (see queue.ts). Bound to 127.0.0.1 unless told otherwise; on loopback, requests must
 * name a loopback Host, so web pages cannot reach the model through DNS rebinding. There is no API
 * key: whoever reaches the port can use the model.
 */

import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { DeepshardError } from "@deepshard/protocol";
import type { CausalLM, Tokenizer } from "@deepshard/tensor";
import { ModelError } from "@deepshard/tensor";
import { readLimitedBody } from "../api.ts";
import type { Logger } from "../logger.ts";
import { CHAT_STOPS, renderChat } from "./chat.ts";
import { OpenAIError } from "./errors.ts";
import { type Completion, complete } from "./generation.ts";
import { GenerationQueue } from "./queue.ts";
import {
  DEFAULT_LIMITS,
  parseBody,
  parseChat,
  parseCompletion,
  type SamplingRequest,
  type ServeLimits,
} from "./requests.ts";

export interface OpenAIServerOptions {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** The id clients pass as `model` and `/v1/models` lists (the weights id, or a chosen name). */
  modelId: string;
  /** 0 picks a free port. */
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  limits?: Partial<ServeLimits>;
  logger?: Logger;
}

export interface OpenAIServer {
  /** The API base, `http://host:port/v1`, as OpenAI clients take it. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** The id of the model served now (see swap). */
  readonly modelId: string;
  readonly limits: ServeLimits;
  /** The model's config has a `chat_template` this server does not render (see chat.ts). */
  readonly chatTemplateIgnored: boolean;
  /** Generations running (0 or 1) and waiting. */
  stats(): { running: number; waiting: number };
  /**
   * Serves `model` from now on: waits for the running generation (waiting ones run on the new
   * model), then switches. The model must have the same configuration (architecture, vocabulary,
   * context) as the one served; the previous model id stays accepted as another name for the new
   * one, so clients configured with it keep working. Returns the previous model, for the caller to
   * dispose.
   */
  swap(next: { model: CausalLM; tokenizer: Tokenizer; modelId: string }): Promise<CausalLM>;
  /** Stops accepting, cancels running and queued generations, closes connections. */
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export async function startOpenAIServer(options: OpenAIServerOptions): Promise<OpenAIServer> {
  const { model: first } = options;
  // What requests run on; swap() replaces it between generations.
  let current = {
    model: first,
    tokenizer: options.tokenizer,
    modelId: options.modelId,
    created: Math.floor(Date.now() / 1000),
  };
  // Ids served before: still accepted, as names of the current model.
  const previousIds = new Set<string>();
  const host = options.host ?? "127.0.0.1";
  const limits: ServeLimits = {
    ...DEFAULT_LIMITS,
    // A prompt must leave room for at least one new token.
    maxPromptTokens: first.config.maxPositions - 1,
    ...options.limits,
  };
  if (limits.maxPromptTokens > first.config.maxPositions - 1)
    limits.maxPromptTokens = first.config.maxPositions - 1;
  const queue = new GenerationQueue(limits.maxQueue);
  const stopping = new AbortController();
  const inFlight = new Set<Promise<void>>();
  const card = () => ({
    id: current.modelId,
    object: "model",
    created: current.created,
    owned_by: "deepshard",
  });
  const served = (id: unknown) => id === current.modelId || previousIds.has(id as string);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? "GET";
    const closed = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) closed.abort(new DeepshardError("CLIENT_GONE", "the client went away"));
    });
    const signal = AbortSignal.any([closed.signal, stopping.signal]);
    try {
      if (
        LOOPBACK.has(host) &&
        !LOOPBACK.has((req.headers.host ?? "localhost").replace(/:\d+$/, "").toLowerCase())
      ) {
        throw new OpenAIError(
          403,
          "forbidden_host",
          "this server answers only requests addressed to a loopback host",
        );
      }
      const path = new URL(req.url ?? "/", "http://localhost").pathname.replace(/\/+$/, "");
      if (path === "/v1/models") {
        allow(method, "GET", path);
        return sendJson(res, 200, { object: "list", data: [card()] });
      }
      if (path.startsWith("/v1/models/")) {
        allow(method, "GET", path);
        const id = decodeURIComponent(path.slice("/v1/models/".length));
        if (!served(id)) throw unknownModel(id);
        return sendJson(res, 200, card());
      }
      const chat = path === "/v1/chat/completions";
      if (!chat && path !== "/v1/completions") {
        throw new OpenAIError(404, "not_found", `unknown route: ${method} ${path || "/"}`);
      }
      allow(method, "POST", path);
      const body = parseBody(await readBody(req, limits.maxBodyBytes));
      if (!served(body.model)) throw unknownModel(body.model as string);
      const request = chat ? parseChat(body, limits) : parseCompletion(body, limits);
      const prompt = "messages" in request ? renderChat(request.messages) : request.prompt;
      const stops = "messages" in request ? [...request.stop, ...CHAT_STOPS] : request.stop;
      // Models are switched only for one of the same configuration, so the tokens stay valid.
      const { tokenizer } = current;
      let promptTokens = tokenizer.encode(prompt);
      // An empty prompt starts a document: GPT-2's convention of <|endoftext|> as its first token.
      if (promptTokens.length === 0) promptTokens = [first.config.bosTokenId ?? tokenizer.eosTokenId];
      if (promptTokens.length > limits.maxPromptTokens) {
        throw new OpenAIError(
          400,
          "context_length_exceeded",
          `the prompt has ${promptTokens.length} tokens; this server allows at most ${limits.maxPromptTokens}`,
          { param: chat ? "messages" : "prompt" },
        );
      }
      const release = await queue.acquire(signal);
      try {
        // The model this slot runs on: a switch happens between generations, never during one.
        const { model, modelId } = current;
        const run = (onText: (piece: string) => void) =>
          complete(model, tokenizer, promptTokens, request, stops, signal, onText);
        const reply = {
          id: `${chat ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`,
          created: Math.floor(Date.now() / 1000),
          model: modelId,
        };
        if (request.stream) await stream(res, reply, chat, request, promptTokens.length, run);
        else {
          const result = await run(() => {});
          sendJson(res, 200, {
            ...reply,
            object: chat ? "chat.completion" : "text_completion",
            choices: [
              chat
                ? {
                    index: 0,
                    message: { role: "assistant", content: result.text, refusal: null },
                    logprobs: null,
                    finish_reason: result.finishReason,
                  }
                : { index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason },
            ],
            usage: usage(promptTokens.length, result),
          });
        }
      } finally {
        release();
      }
    } catch (err) {
      if (signal.aborted) {
        res.destroy();
        return;
      }
      sendError(req, res, err, options.logger);
    }
  };

  const server: Server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
    const p = handle(req, res).finally(() => inFlight.delete(p));
    inFlight.add(p);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new DeepshardError("SERVE_PORT_IN_USE", `port ${options.port} is in use on ${host}`, {
              details: "pass another --port (0 picks a free one)",
            })
          : new DeepshardError("SERVE_START_FAILED", `cannot listen on ${host}:${options.port}`, {
              cause: err,
            }),
      ),
    );
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}/v1`,
    port,
    host,
    get modelId() {
      return current.modelId;
    },
    limits,
    chatTemplateIgnored: typeof first.config.raw.chat_template === "string",
    stats: () => ({ running: queue.running, waiting: queue.waiting }),
    async swap(next) {
      // The parsed configuration (architecture, vocabulary, context, tokenizer), not config.json's text.
      const { raw: _was, ...was } = current.model.config as unknown as Record<string, unknown>;
      const { raw: _now, ...now } = next.model.config as unknown as Record<string, unknown>;
      const differs = [...new Set([...Object.keys(was), ...Object.keys(now)])].filter(
        (key) => JSON.stringify(was[key]) !== JSON.stringify(now[key]),
      );
      if (differs.length > 0) {
        throw new DeepshardError("SERVE_MODEL_MISMATCH", "the new model's configuration differs", {
          details: `different: ${differs.join(", ")}; restart the server to serve another architecture`,
        });
      }
      const release = await queue.acquire(stopping.signal, true);
      const previous = current;
      try {
        if (next.modelId !== previous.modelId) previousIds.add(previous.modelId);
        previousIds.delete(next.modelId);
        current = { ...next, created: Math.floor(Date.now() / 1000) };
      } finally {
        release();
      }
      return previous.model;
    },
    close() {
      closing ??= (async () => {
        stopping.abort(new DeepshardError("SERVER_CLOSED", "the server is stopping"));
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await Promise.allSettled([...inFlight]);
        await done;
      })();
      return closing;
    },
  };
}

type Run = (onText: (piece: string) => void) => Promise<Completion>;

/** SSE: a chunk per piece of text, a last chunk with the finish reason, usage if asked, `[DONE]`. */
async function stream(
  res: ServerResponse,
  reply: { id: string; created: number; model: string },
  chat: boolean,
  request: SamplingRequest,
  promptTokens: number,
  run: Run,
): Promise<void> {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  const object = chat ? "chat.completion.chunk" : "text_completion";
  const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
  const chunk = (delta: Record<string, string>, finish: string | null) =>
    send({
      ...reply,
      object,
      choices: [
        chat
          ? { index: 0, delta, logprobs: null, finish_reason: finish }
          : { index: 0, text: delta.content ?? "", logprobs: null, finish_reason: finish },
      ],
      ...(request.includeUsage ? { usage: null } : {}),
    });
  if (chat) chunk({ role: "assistant", content: "" }, null);
  let result: Completion;
  try {
    result = await run((piece) => chunk({ content: piece }, null));
  } catch (err) {
    if (res.destroyed) throw err;
    // Headers are sent: the error travels as an event, as OpenAI's API does mid-stream.
    const e =
      err instanceof OpenAIError ? err : new OpenAIError(500, "generation_failed", "generation failed");
    send(e.body());
    res.end("data: [DONE]\n\n");
    return;
  }
  chunk({}, result.finishReason);
  if (request.includeUsage) send({ ...reply, object, choices: [], usage: usage(promptTokens, result) });
  res.end("data: [DONE]\n\n");
}

function usage(promptTokens: number, result: Completion) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: result.completionTokens,
    total_tokens: promptTokens + result.completionTokens,
  };
}

function allow(method: string, expected: string, path: string): void {
  if (method !== expected) {
    throw new OpenAIError(405, "method_not_allowed", `${method} is not allowed on ${path}; use ${expected}`, {
      meta: { allow: expected },
    });
  }
}

function unknownModel(id: string): OpenAIError {
  return new OpenAIError(
    404,
    "model_not_found",
    `the model ${JSON.stringify(id)} does not exist on this server`,
    {
      param: "model",
    },
  );
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  logger: Logger | undefined,
): void {
  let e: OpenAIError;
  if (err instanceof OpenAIError) e = err;
  else if (err instanceof ModelError && err.code === "CONTEXT_OVERFLOW") {
    e = new OpenAIError(400, "context_length_exceeded", err.shortMessage);
  } else if (err instanceof ModelError && err.code === "INPUT_INVALID") {
    // A tokenizer whose ids reach beyond the model's vocabulary, say.
    e = new OpenAIError(400, "invalid_prompt", err.shortMessage);
  } else {
    logger?.error("openai request failed", {
      path: req.url,
      error: err instanceof Error ? (err.stack ?? err.message) : `${err}`,
    });
    e = new OpenAIError(500, "internal_error", "internal error");
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (typeof e.meta.retryAfter === "number") res.setHeader("retry-after", String(e.meta.retryAfter));
  if (typeof e.meta.allow === "string") res.setHeader("allow", e.meta.allow);
  // A body we did not read may still be arriving: answer, then close the connection.
  if (!req.complete) res.setHeader("connection", "close");
  sendJson(res, e.status, e.body());
  if (!req.complete) res.on("finish", () => req.destroy());
}

/** Reads at most `limit` bytes; more is a 413 (reading stops, so the answer can still be sent). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return readLimitedBody(
    req,
    limit,
    () =>
      new OpenAIError(413, "request_too_large", `the request body exceeds ${limit} bytes`, {
        meta: { limit },
      }),
    () => new OpenAIError(400, "bad_body", "the request body broke off"),
  );
}
