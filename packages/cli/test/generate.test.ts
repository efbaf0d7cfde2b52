import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BYTE_EOS,
  BYTE_TOKENIZER_CLASS,
  ByteTokenizer,
  type CausalLM,
  createModel,
  generate,
  generateText,
  gpt2ConfigJson,
  initBackend,
  loadModel,
  saveModel,
} from "@deepshard/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const fixture = "/work/shared/fixtures/hf/gpt2-tiny";
const dir = mkdtempSync(join(tmpdir(), "deepshard-generate-"));
const bytesModel = join(dir, "bytes-model");
const prompt = "A week has";

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** Spawns the real CLI; several runs go in parallel, as each pays Node's and tfjs's startup. */
function run(args: string[], stdin = ""): Promise<Run> {
  const { DEEPSHARD_BACKEND: _, ...env } = process.env;
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      [bin, ...args],
      { encoding: "utf8", env },
      (err, stdout, stderr) => {
        done({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(stdin);
  });
}

/** The JSON lines of `generate --json`: token events, then the summary. */
function events(out: string): { tokens: { token: number; text?: string }[]; done: Record<string, unknown> } {
  const lines = out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  return { tokens: lines.slice(0, -1), done: lines.at(-1) };
}

let bytes: CausalLM;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  const config = gpt2ConfigJson({
    vocabSize: 258,
    nPositions: 1024,
    nEmbd: 32,
    nLayer: 1,
    nHead: 2,
    eosTokenId: BYTE_EOS,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  bytes = createModel(config, { seed: 3 });
  await saveModel(bytes, bytesModel);
});

afterAll(() => {
  bytes?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function expectedText(options: {
  seed: number;
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
}) {
  let text = "";
  for await (const piece of generateText(bytes, new ByteTokenizer(), prompt, options)) text += piece;
  return text;
}

describe("deepshard generate", () => {
  it("streams the tensor package's seeded completion, reproducibly, and honours --max-tokens", async () => {
    const common = ["generate", "--model", bytesModel, "--backend", "wasm", "--max-tokens", "12"];
    const [a, b, other, human, piped] = await Promise.all([
      run([...common, "--seed", "41", "--json", prompt]),
      run([...common, "--seed", "41", "--json", prompt]),
      run([
        ...common,
        "--seed",
        "43",
        "--json",
        "--temperature",
        "1.5",
        "--top-k",
        "50",
        "--top-p",
        "0.95",
        prompt,
      ]),
      run([...common, "--seed", "41", prompt]),
      run([...common, "--seed", "41"], prompt),
    ]);
    for (const r of [a, b, other, human, piped]) expect(r.status, r.stderr).toBe(0);
    const first = events(a.stdout);
    const again = events(b.stdout);
    expect(again.tokens).toEqual(first.tokens);
    expect({ ...again.done, tokensPerSecond: 0 }).toEqual({ ...first.done, tokensPerSecond: 0 });
    expect(first.tokens).toHaveLength(12);
    expect(first.done).toMatchObject({
      done: true,
      tokens: 12,
      promptTokens: prompt.length,
      finishReason: "length",
      seed: 41,
      backend: "wasm",
    });
    expect(first.done.text).toBe(await expectedText({ seed: 41, maxNewTokens: 12 }));
    expect(first.tokens.map((e) => e.text).join("")).toBe(first.done.text);
    expect(human.stdout).toBe(first.done.text);
    expect(piped.stdout).toBe(first.done.text);
    expect(human.stderr).toMatch(
      /^\[12 tokens in [\d.]+ s, [\d.]+ tok\/s, finish length, seed 41, backend wasm\]$/m,
    );

    const sampled = events(other.stdout).done;
    expect(sampled.text).toBe(
      await expectedText({ seed: 43, maxNewTokens: 12, temperature: 1.5, topK: 50, topP: 0.95 }),
    );
    expect(sampled.text).not.toBe(first.done.text);
  });

  it("ends before a --stop text without printing any of it", async () => {
    const full = await expectedText({ seed: 7, maxNewTokens: 24 });
    // A two-character stop text that first occurs at k ≥ 4, so some text comes before it.
    const k = [...Array(full.length - 1).keys()].find(
      (i) => i >= 4 && full.indexOf(full.slice(i, i + 2)) === i,
    )!;
    const stop = full.slice(k, k + 2);
    const expected = full.slice(0, k);
    expect(expected.length).toBeGreaterThanOrEqual(4);
    const [j, h] = await Promise.all([
      run([
        "generate",
        "--model",
        bytesModel,
        "--seed",
        "7",
        "--max-tokens",
        "24",
        "--stop",
        "never-generated",
        "--stop",
        stop,
        "--json",
        prompt,
      ]),
      run(["generate", "--model", bytesModel, "--seed", "7", "--max-tokens", "24", "--stop", stop, prompt]),
    ]);
    expect(j.status, j.stderr).toBe(0);
    const { tokens, done } = events(j.stdout);
    expect(done).toMatchObject({ text: expected, finishReason: "stop" });
    expect(tokens.map((e) => e.text).join("")).toBe(expected);
    expect(tokens.length).toBeLessThan(24);
    expect(h.stdout).toBe(expected);
  });

  it("generates token ids for a model without a tokenizer (gpt2-tiny)", async () => {
    const ids = [845, 139, 124, 368];
    const r = await run([
      "generate",
      "--model",
      fixture,
      "--prompt-ids",
      ids.join(" "),
      "--max-tokens",
      "5",
      "--seed",
      "9",
      "--temperature",
      "0.7",
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const { tokens, done } = events(r.stdout);
    const model = await loadModel(fixture);
    try {
      const expected = await generate(model, ids, { seed: 9, maxNewTokens: 5, temperature: 0.7 });
      expect(tokens.map((e) => e.token)).toEqual(expected.tokens);
      expect(done).toMatchObject({ tokens: 5, tokenIds: expected.tokens, finishReason: "length" });
      expect(done).not.toHaveProperty("text");
    } finally {
      model.dispose();
    }
  });

  it("stops quietly when the reader closes the pipe", async () => {
    const child = spawn(process.execPath, [
      bin,
      "generate",
      "--model",
      bytesModel,
      "--max-tokens",
      "1000",
      "--seed",
      "1",
      "--json",
      "x",
    ]);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise((done) => child.on("close", done));
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  it("rejects bad options and prompts with one clear error and exit 1", async () => {
    const cases: [string[], RegExp][] = [
      [["generate", "--model", fixture, "hello"], /^error: no tokenizer for this gpt2 model/m],
      [
        ["generate", "--model", fixture, "--prompt-ids", "1 2 1000"],
        /token id 1000 at position 2 is outside the vocabulary/,
      ],
      [["generate", "--model", join(dir, "nope"), "hi"], /^error: model directory .*nope does not exist$/m],
      [["generate", "--model", bytesModel], /^error: the prompt is empty$/m],
      [
        ["generate", "--model", bytesModel, "--top-p", "2", "hi"],
        /option '--top-p <p>' argument '2' is invalid/,
      ],
      [
        ["generate", "--model", bytesModel, "--max-tokens", "0", "hi"],
        /option '--max-tokens <n>' argument '0' is invalid/,
      ],
      [["generate", "hi"], /required option '--model <dir>' not specified/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    for (const [i, r] of results.entries()) {
      const [args, pattern] = cases[i]!;
      expect(r.status, args.join(" ")).toBe(1);
      expect(r.stderr, args.join(" ")).toMatch(pattern);
      expect(r.stderr, args.join(" ")).not.toMatch(/\bat .*\.ts:\d+/);
      expect(r.stdout).toBe("");
    }
  });
});
