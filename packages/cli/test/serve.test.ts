import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import {
  BYTE_EOS,
  BYTE_TOKENIZER_CLASS,
  ByteTokenizer,
  type CausalLM,
  createModel,
  generateText,
  gpt2ConfigJson,
  initBackend,
  saveModel,
} from "@deepshard/tensor";
import { Agent, request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type OpenAIServer, renderChat, startOpenAIServer } from "../src/node/serve/index.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const dir = mkdtempSync(join(tmpdir(), "deepshard-serve-"));
const modelDir = join(dir, "bytes-model");
const MODEL = "tiny-bytes";
const tokenizer = new ByteTokenizer();

let model: CausalLM;
let server: OpenAIServer;
const agent = new Agent({ connections: 16 });
const toClose: Array<() => Promise<void>> = [];

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  const config = gpt2ConfigJson({
    vocabSize: 258,
    nPositions: 4096,
    nEmbd: 32,
    nLayer: 1,
    nHead: 2,
    eosTokenId: BYTE_EOS,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  model = createModel(config, { seed: 3 });
  await saveModel(model, modelDir);
  server = await startOpenAIServer({
    model,
    tokenizer,
    modelId: MODEL,
    port: 0,
    limits: { maxQueue: 2, maxTokens: 3000, maxPromptTokens: 200 },
  });
});

afterEach(async () => {
  for (const close of toClose.splice(0).reverse()) await close();
});

afterAll(async () => {
  await server?.close();
  await agent.close();
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: the tests read many OpenAI response shapes
  json: () => any;
}

async function call(
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: unknown,
  options: { raw?: string; signal?: AbortSignal; base?: string } = {},
): Promise<Answer> {
  const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const res = await request(`${options.base ?? server.url}${path}`, {
    method,
    dispatcher: agent,
    ...(payload === undefined ? {} : { body: payload, headers: { "content-type": "application/json" } }),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** The `data:` payloads of an SSE body, in order. */
function events(text: string): string[] {
  expect(text.endsWith("\n\n")).toBe(true);
  return text
    .split("\n\n")
    .filter((block) => block.length > 0)
    .map((block) => {
      expect(block.startsWith("data: ")).toBe(true);
      return block.slice("data: ".length);
    });
}

async function reference(
  prompt: string,
  options: { seed: number; maxNewTokens: number; temperature?: number },
) {
  let text = "";
  for await (const piece of generateText(model, tokenizer, prompt, options)) text += piece;
  return text;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function expectError(a: Answer, status: number, code: string, param: string | null = null): void {
  expect(a.status, a.text).toBe(status);
  expect(a.headers["content-type"]).toMatch(/^application\/json/);
  const body = a.json();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(body.error).toMatchObject({ code, param });
  expect(typeof body.error.message).toBe("string");
  expect(body.error.type).toBe(status === 429 ? "rate_limit_error" : "invalid_request_error");
}

describe("the OpenAI-compatible server", () => {
  it("lists its one model and 404s other models and routes", async () => {
    const list = await call("GET", "/models");
    expect(list.status).toBe(200);
    expect(list.json()).toEqual({
      object: "list",
      data: [{ id: MODEL, object: "model", created: expect.any(Number), owned_by: "deepshard" }],
    });
    expect((await call("GET", `/models/${MODEL}`)).json().id).toBe(MODEL);
    expectError(await call("GET", "/models/gpt-4"), 404, "model_not_found", "model");
    expectError(await call("GET", "/nothing"), 404, "not_found");
    expectError(
      await call("POST", "/completions", { model: "gpt-4", prompt: "x" }),
      404,
      "model_not_found",
      "model",
    );
    const wrongMethod = await call("DELETE", "/completions");
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe("POST");
  });

  it("completes a prompt as the tensor package does for the seed, with usage and max_tokens", async () => {
    const prompt = "A week has";
    const a = await call("POST", "/completions", { model: MODEL, prompt, max_tokens: 12, seed: 41 });
    expect(a.status, a.text).toBe(200);
    const body = a.json();
    const text = await reference(prompt, { seed: 41, maxNewTokens: 12 });
    expect(body).toEqual({
      id: expect.stringMatching(/^cmpl-/),
      object: "text_completion",
      created: expect.any(Number),
      model: MODEL,
      choices: [{ index: 0, text, logprobs: null, finish_reason: "length" }],
      usage: { prompt_tokens: prompt.length, completion_tokens: 12, total_tokens: prompt.length + 12 },
    });
    // The prompt as an array of one string is the same request.
    const again = await call("POST", "/completions", {
      model: MODEL,
      prompt: [prompt],
      max_tokens: 12,
      seed: 41,
    });
    expect(again.json().choices[0].text).toBe(text);
    // Without max_tokens a completion has OpenAI's default of 16 tokens.
    const dflt = (
      await call("POST", "/completions", { model: MODEL, prompt, seed: 41, temperature: 0 })
    ).json();
    expect(dflt.usage.completion_tokens).toBe(16);
  });

  it("streams completions as SSE chunks that add up to the same text, then [DONE]", async () => {
    const req = { model: MODEL, prompt: "Once upon", max_tokens: 20, seed: 7, temperature: 0.8, top_p: 0.9 };
    const plain = (await call("POST", "/completions", req)).json();
    const streamed = await call("POST", "/completions", {
      ...req,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(streamed.status).toBe(200);
    expect(streamed.headers["content-type"]).toMatch(/^text\/event-stream/);
    const data = events(streamed.text);
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    const usageChunk = chunks.pop();
    expect(usageChunk).toMatchObject({ object: "text_completion", choices: [], usage: plain.usage });
    for (const c of chunks) {
      expect(c).toMatchObject({ id: chunks[0].id, object: "text_completion", model: MODEL, usage: null });
    }
    expect(chunks.map((c) => c.choices[0].text).join("")).toBe(plain.choices[0].text);
    expect(chunks.at(-1).choices[0].finish_reason).toBe(plain.choices[0].finish_reason);
    expect(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
  });

  it("chats through the plain template, streamed and not, with the same text", async () => {
    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: [{ type: "text", text: "What is a week?" }] },
    ];
    const req = { model: MODEL, messages, max_tokens: 15, seed: 5 };
    const plain = await call("POST", "/chat/completions", req);
    expect(plain.status, plain.text).toBe(200);
    const body = plain.json();
    const rendered = "System: Be brief.\nUser: What is a week?\nAssistant:";
    expect(
      renderChat([
        { role: "system", content: "Be brief." },
        { role: "user", content: "What is a week?" },
      ]),
    ).toBe(rendered);
    const text = await reference(rendered, { seed: 5, maxNewTokens: 15 });
    expect(body).toMatchObject({
      id: expect.stringMatching(/^chatcmpl-/),
      object: "chat.completion",
      model: MODEL,
      choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "length" }],
      usage: { prompt_tokens: rendered.length, completion_tokens: 15, total_tokens: rendered.length + 15 },
    });
    const streamed = await call("POST", "/chat/completions", { ...req, stream: true });
    const data = events(streamed.text);
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks.map((c) => c.choices[0].delta.content ?? "").join("")).toBe(text);
    expect(chunks.at(-1).choices[0]).toMatchObject({ delta: {}, finish_reason: "length" });
  });

  it("ends at a stop sequence without sending any part of it", async () => {
    const req = { model: MODEL, prompt: "Stop here", max_tokens: 40, seed: 9 };
    const full = (await call("POST", "/completions", req)).json().choices[0].text as string;
    const stop = full.slice(12, 15);
    const cut = full.indexOf(stop);
    for (const s of [stop, ["\u0000never", stop]]) {
      const a = (await call("POST", "/completions", { ...req, stop: s })).json();
      expect(a.choices[0]).toMatchObject({ text: full.slice(0, cut), finish_reason: "stop" });
      expect(a.usage.completion_tokens).toBeLessThan(40);
      const streamed = events((await call("POST", "/completions", { ...req, stop: s, stream: true })).text);
      const pieces = streamed.slice(0, -1).map((d) => JSON.parse(d).choices[0].text);
      expect(pieces.join("")).toBe(full.slice(0, cut));
    }
  });

  it("answers malformed requests with a 400 in OpenAI's error shape", async () => {
    const ok = { model: MODEL, prompt: "hi" };
    expectError(await call("POST", "/completions", undefined, { raw: "{not json" }), 400, "invalid_json");
    expectError(await call("POST", "/completions", undefined, { raw: "[1]" }), 400, "invalid_request");
    expectError(await call("POST", "/completions", { prompt: "hi" }), 400, "missing_required", "model");
    expectError(await call("POST", "/completions", { model: MODEL }), 400, "missing_required", "prompt");
    expectError(
      await call("POST", "/chat/completions", { model: MODEL }),
      400,
      "missing_required",
      "messages",
    );
    expectError(await call("POST", "/completions", { ...ok, n: 2 }), 400, "invalid_value", "n");
    expectError(
      await call("POST", "/completions", { ...ok, logprobs: 2 }),
      400,
      "unsupported_parameter",
      "logprobs",
    );
    expectError(
      await call("POST", "/chat/completions", {
        model: MODEL,
        messages: [{ role: "user", content: "x" }],
        logprobs: true,
      }),
      400,
      "unsupported_parameter",
      "logprobs",
    );
    expectError(
      await call("POST", "/completions", { ...ok, temperature: "hot" }),
      400,
      "invalid_type",
      "temperature",
    );
    expectError(
      await call("POST", "/completions", { ...ok, temperature: 3 }),
      400,
      "invalid_value",
      "temperature",
    );
    expectError(
      await call("POST", "/completions", { ...ok, max_tokens: 1.5 }),
      400,
      "invalid_type",
      "max_tokens",
    );
    expectError(
      await call("POST", "/completions", { ...ok, max_tokens: 3001 }),
      400,
      "invalid_value",
      "max_tokens",
    );
    expectError(await call("POST", "/completions", { ...ok, stream: "yes" }), 400, "invalid_type", "stream");
    expectError(await call("POST", "/completions", { ...ok, stop: [1] }), 400, "invalid_type", "stop");
    expectError(
      await call("POST", "/completions", { ...ok, stop: ["a", "b", "c", "d", "e"] }),
      400,
      "invalid_value",
      "stop",
    );
    expectError(await call("POST", "/completions", { ...ok, prompt: 42 }), 400, "invalid_type", "prompt");
    expectError(
      await call("POST", "/chat/completions", { model: MODEL, messages: [{ role: "wizard", content: "x" }] }),
      400,
      "invalid_value",
      "messages[0].role",
    );
    expectError(
      await call("POST", "/chat/completions", { model: MODEL, messages: [{ role: "user", content: 5 }] }),
      400,
      "invalid_type",
      "messages[0].content",
    );
    // 200 tokens is the prompt limit here (one byte, one token).
    expect(
      (await call("POST", "/completions", { ...ok, prompt: "x".repeat(200), max_tokens: 1 })).status,
    ).toBe(200);
    expectError(
      await call("POST", "/completions", { ...ok, prompt: "x".repeat(201) }),
      400,
      "context_length_exceeded",
      "prompt",
    );
    const huge = await call("POST", "/completions", { ...ok, prompt: "x".repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    expect(huge.json().error.code).toBe("request_too_large");
    // Unknown fields are ignored, as clients send vendor extensions.
    expect((await call("POST", "/completions", { ...ok, max_tokens: 1, frobnicate: true })).status).toBe(200);
  });

  it("queues concurrent requests first in, first out, and all succeed", async () => {
    const finished: number[] = [];
    const seen: number[] = [];
    const requests = [0, 1, 2].map((i) =>
      call("POST", "/completions", {
        model: MODEL,
        prompt: `request ${i}`,
        max_tokens: 150,
        seed: i,
        temperature: 0,
      }).then((a) => {
        finished.push(i);
        return a;
      }),
    );
    await until(() => {
      seen.push(server.stats().waiting);
      return server.stats().waiting === 2;
    }, "two waiting requests");
    const answers = await Promise.all(requests);
    for (const [i, a] of answers.entries()) {
      expect(a.status).toBe(200);
      expect(a.json().choices[0].text).toBe(
        await reference(`request ${i}`, { seed: i, maxNewTokens: 150, temperature: 0 }),
      );
    }
    expect(finished).toEqual([0, 1, 2]);
    expect(server.stats()).toEqual({ running: 0, waiting: 0 });
  });

  it("refuses beyond the queue with a 429 and Retry-After; a client that goes away frees its place", async () => {
    const long = { model: MODEL, prompt: "long", max_tokens: 3000, temperature: 0 };
    const holder = new AbortController();
    const waiter = new AbortController();
    const pending = [call("POST", "/completions", long, { signal: holder.signal }).catch((e: Error) => e)];
    await until(() => server.stats().running === 1, "the first generation");
    pending.push(call("POST", "/completions", long, { signal: waiter.signal }).catch((e: Error) => e));
    const queued = call("POST", "/completions", { ...long, max_tokens: 5 });
    await until(() => server.stats().waiting === 2, "two waiting requests");
    const refused = await call("POST", "/completions", { ...long, max_tokens: 5 });
    expectError(refused, 429, "queue_full");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);

    // The waiting one leaves the queue when its client goes away...
    waiter.abort();
    await until(() => server.stats().waiting === 1, "the aborted waiter to leave");
    // ...and the running one frees the model: the queued request runs and is answered at once.
    const started = performance.now();
    holder.abort();
    const after = await queued;
    expect(after.status).toBe(200);
    expect(after.json().usage.completion_tokens).toBe(5);
    expect(performance.now() - started).toBeLessThan(5_000);
    for (const p of await Promise.all(pending)) expect(p).toBeInstanceOf(Error);
    expect(server.stats()).toEqual({ running: 0, waiting: 0 });
  });
});

describe("the OpenAI-compatible server's edges", () => {
  it("stops a stream whose client goes away and serves the next request", async () => {
    const controller = new AbortController();
    const res = await request(`${server.url}/completions`, {
      method: "POST",
      dispatcher: agent,
      signal: controller.signal,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: "go", max_tokens: 3000, temperature: 0, stream: true }),
    });
    expect(res.statusCode).toBe(200);
    // Read until the first chunk arrives, then hang up.
    const reader = res.body[Symbol.asyncIterator]();
    await reader.next();
    expect(server.stats().running).toBe(1);
    controller.abort();
    await until(() => server.stats().running === 0, "the stream's generation to stop");
    const next = await call("POST", "/completions", { model: MODEL, prompt: "next", max_tokens: 3 });
    expect(next.json().usage.completion_tokens).toBe(3);
  });

  it("on loopback, refuses requests addressed to another host (DNS rebinding)", async () => {
    const res = await request(`${server.url}/models`, {
      dispatcher: agent,
      headers: { host: "evil.example" },
    });
    expect(res.statusCode).toBe(403);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe("forbidden_host");
  });
});

describe("switching models", () => {
  it("swaps between generations, keeps the old id as a name, and refuses another architecture", async () => {
    const config = model.config.raw;
    const a = createModel(config, { seed: 4 });
    const b = createModel(config, { seed: 5 });
    const s = await startOpenAIServer({
      model: a,
      tokenizer,
      modelId: "weights-a",
      port: 0,
      limits: { maxTokens: 3000 },
    });
    toClose.push(async () => {
      await s.close();
      a.dispose();
      b.dispose();
    });
    const at = { base: s.url };
    const holder = new AbortController();
    const running = call(
      "POST",
      "/completions",
      { model: "weights-a", prompt: "long", max_tokens: 3000, temperature: 0, stream: true },
      { ...at, signal: holder.signal },
    ).catch((e: Error) => e);
    await until(() => s.stats().running === 1, "the first generation");
    let swapped = false;
    const swap = s.swap({ model: b, tokenizer, modelId: "weights-b" }).then((previous) => {
      swapped = true;
      return previous;
    });
    // Queued behind the switch: it runs on the new model.
    const after = call(
      "POST",
      "/completions",
      { model: "weights-a", prompt: "hi", max_tokens: 20, seed: 7 },
      at,
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(swapped).toBe(false);
    expect(s.modelId).toBe("weights-a");
    holder.abort();
    expect(await swap).toBe(a);
    expect(s.modelId).toBe("weights-b");
    let expected = "";
    for await (const piece of generateText(b, tokenizer, "hi", { seed: 7, maxNewTokens: 20 }))
      expected += piece;
    const answer = await after;
    expect(answer.status, answer.text).toBe(200);
    expect(answer.json()).toMatchObject({ model: "weights-b", choices: [{ text: expected }] });
    expect(
      (await call("GET", "/models", undefined, at)).json().data.map((m: { id: string }) => m.id),
    ).toEqual(["weights-b"]);
    expect((await call("GET", "/models/weights-a", undefined, at)).json().id).toBe("weights-b");
    expectError(await call("GET", "/models/weights-c", undefined, at), 404, "model_not_found", "model");
    await running;

    const other = createModel({ ...config, n_embd: 16 }, { seed: 6 });
    try {
      await expect(s.swap({ model: other, tokenizer, modelId: "weights-c" })).rejects.toMatchObject({
        code: "SERVE_MODEL_MISMATCH",
      });
    } finally {
      other.dispose();
    }
    expect(s.modelId).toBe("weights-b");
    expect(
      (await call("POST", "/completions", { model: "weights-b", prompt: "x", max_tokens: 2 }, at)).status,
    ).toBe(200);
  });
});

describe("deepshard inference serve", () => {
  it("without --model asks the node's API, and says clearly when no node answers", async () => {
    const { DEEPSHARD_BACKEND: _, ...env } = process.env;
    const child = spawn(
      process.execPath,
      [bin, "inference", "serve", "--api", "http://127.0.0.1:9", "--port", "0"],
      {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: cannot reach the node at http:\/\/127\.0\.0\.1:9 \(/);
  });

  it("serves a model folder: prints its URL with --json, answers OpenAI requests, stops on SIGTERM", async () => {
    const { DEEPSHARD_BACKEND: _, ...env } = process.env;
    const child = spawn(
      process.execPath,
      [
        bin,
        "inference",
        "serve",
        "--model",
        modelDir,
        "--port",
        "0",
        "--json",
        "--backend",
        "wasm",
        "--name",
        "cli-model",
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    toClose.push(async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    });
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve);
      void exited.then(() => reject(new Error(`serve exited: ${stderr}`)));
    });
    const info = JSON.parse(first);
    expect(info).toMatchObject({ model: "cli-model", host: "127.0.0.1", backend: "wasm" });
    expect(info.weightsId).toMatch(/^[0-9a-f]{64}$/);
    expect(info.url).toBe(`http://127.0.0.1:${info.port}/v1`);
    const list = await call("GET", "/models", undefined, { base: info.url });
    expect(list.json().data.map((m: { id: string }) => m.id)).toEqual(["cli-model"]);
    const a = await call(
      "POST",
      "/completions",
      { model: "cli-model", prompt: "A week has", max_tokens: 12, seed: 41 },
      { base: info.url },
    );
    expect(a.json().choices[0].text).toBe(await reference("A week has", { seed: 41, maxNewTokens: 12 }));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
