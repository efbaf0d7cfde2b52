import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BYTE_TOKENIZER_CLASS,
  ByteTokenizer,
  type CausalLM,
  createModel,
  evaluate,
  gpt2ConfigJson,
  initBackend,
  openCheckpoint,
  saveModel,
} from "@deepshard/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkModel } from "../src/node/weights-id.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const fixture = "/work/shared/fixtures/hf/gpt2-tiny";
const dir = mkdtempSync(join(tmpdir(), "deepshard-model-"));
const bytesModel = join(dir, "bytes-model");

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

let sequences: number[][];
/** Mean next-token cross-entropy computed here from the fixture's reference logits (transformers). */
let referenceLoss: number;
let bytes: CausalLM;

beforeAll(async () => {
  const ref = await openCheckpoint(join(fixture, "reference.safetensors"));
  const ids = Array.from((await ref.read("input_ids")).data as Int32Array);
  const logits = await ref.readF32("logits");
  await ref.close();
  const [batch, length, vocab] = [2, 16, 1000];
  sequences = Array.from({ length: batch }, (_, b) => ids.slice(b * length, (b + 1) * length));
  let total = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < length; t++) {
      const row = logits.subarray((b * length + t) * vocab, (b * length + t + 1) * vocab);
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
      total += lse - row[sequences[b]![t + 1]!]!;
    }
  }
  referenceLoss = total / (batch * (length - 1));

  await initBackend({ backend: "wasm" });
  const config = gpt2ConfigJson({
    vocabSize: 258,
    nPositions: 16,
    nEmbd: 32,
    nLayer: 1,
    nHead: 2,
    eosTokenId: 256,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  bytes = createModel(config, { seed: 11 });
  await saveModel(bytes, bytesModel);
});

afterAll(() => {
  bytes?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe("deepshard model eval", () => {
  it("gives the cross-entropy of the transformers reference on gpt2-tiny, for both token id formats", async () => {
    const expected = JSON.parse(readFileSync(join(fixture, "expected.json"), "utf8"));
    expect(referenceLoss).toBeCloseTo(expected.loss_before_each_step[0], 5);
    const lines = join(dir, "ids.txt");
    writeFileSync(lines, `${sequences.map((s) => s.join(" ")).join("\n")}\n\n`);
    const json = join(dir, "ids.json");
    writeFileSync(json, JSON.stringify(sequences));

    const [a, b, piped] = await Promise.all([
      run(["model", "eval", fixture, "--token-ids", lines, "--json", "--backend", "wasm"]),
      run(["model", "eval", fixture, "--token-ids", json]),
      run(["model", "eval", fixture, "--token-ids", "-", "--json"], readFileSync(lines, "utf8")),
    ]);
    expect(a.status, a.stderr).toBe(0);
    const result = JSON.parse(a.stdout);
    expect(Math.abs(result.meanCrossEntropy - referenceLoss)).toBeLessThan(1e-5);
    expect(result.perplexity).toBeCloseTo(Math.exp(result.meanCrossEntropy), 6);
    expect(result).toMatchObject({ tokens: 30, sequences: 2, backend: "wasm" });

    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toContain(`mean cross-entropy ${referenceLoss.toFixed(4)} nats/token`);
    expect(b.stdout).toContain(`perplexity ${Math.exp(referenceLoss).toFixed(2)}`);

    expect(piped.status, piped.stderr).toBe(0);
    expect(JSON.parse(piped.stdout).meanCrossEntropy).toBe(result.meanCrossEntropy);
  });

  it("tokenizes plain text and JSONL for a byte-level model, with the tensor package's result", async () => {
    const docs = ["The day after Monday is Tuesday.", "2 plus 2 is 4. A week has seven days, ça va."];
    const plain = join(dir, "doc.txt");
    writeFileSync(plain, docs[1]!);
    const jsonl = join(dir, "docs.jsonl");
    writeFileSync(jsonl, `${docs.map((text) => JSON.stringify({ text, source: "test" })).join("\n")}\n`);
    const tok = new ByteTokenizer();

    const [p, j, h] = await Promise.all([
      run(["model", "eval", bytesModel, "--text", plain, "--json"]),
      run(["model", "eval", bytesModel, "--text", jsonl, "--json", "--batch-size", "1"]),
      run(["model", "eval", bytesModel, "--text", jsonl, "--batch-size", "1"]),
    ]);
    expect(p.status, p.stderr).toBe(0);
    const single = evaluate(bytes, [tok.encode(docs[1]!)]);
    expect(JSON.parse(p.stdout).meanCrossEntropy).toBeCloseTo(single.meanCrossEntropy, 5);
    // Longer than the 16-byte context: scored in windows, like the tensor package does.
    expect(JSON.parse(p.stdout).tokens).toBe(single.tokens);

    expect(j.status, j.stderr).toBe(0);
    const both = evaluate(
      bytes,
      docs.map((d) => tok.encode(d)),
    );
    expect(JSON.parse(j.stdout)).toMatchObject({ sequences: 2, tokens: both.tokens });
    expect(JSON.parse(j.stdout).meanCrossEntropy).toBeCloseTo(both.meanCrossEntropy, 5);
    // More sequences than one batch: progress lines on stderr (not a terminal), none with --json.
    expect(j.stderr).toBe("");
    expect(h.stderr).toMatch(/^sequence 1\/2 \([\d.]+s\)\nsequence 2\/2 \([\d.]+s\)\n$/);
    expect(h.stdout).toContain(`mean cross-entropy ${both.meanCrossEntropy.toFixed(4)}`);
  });

  it("says clearly what is wrong with the model directory or the input, in one error and exit 1", async () => {
    const corrupt = join(dir, "corrupt");
    mkdirSync(corrupt);
    copyFileSync(join(fixture, "config.json"), join(corrupt, "config.json"));
    writeFileSync(
      join(corrupt, "model.safetensors"),
      readFileSync(join(fixture, "model.safetensors")).subarray(0, 1000),
    );
    const ids = join(dir, "ok-ids.txt");
    writeFileSync(ids, "1 2 3\n");
    const outOfRange = join(dir, "oor.json");
    writeFileSync(outOfRange, "[[1, 2, 3], [4, 5, 1000]]");
    const notIds = join(dir, "not-ids.txt");
    writeFileSync(notIds, "1 2 3\n4 five 6\n");
    const badJson = join(dir, "bad.json");
    writeFileSync(badJson, "[[1, 2,");
    const empty = join(dir, "empty.txt");
    writeFileSync(empty, "\n\n");
    const short = join(dir, "short.txt");
    writeFileSync(short, "7\n8\n");
    const badJsonl = join(dir, "bad.jsonl");
    writeFileSync(badJsonl, '{"text": "fine"}\n{"txt": "oops"}\n');

    const cases: [string[], RegExp][] = [
      [
        ["model", "eval", join(dir, "nope"), "--token-ids", ids],
        /^error: model directory .*nope does not exist$/m,
      ],
      [
        ["model", "eval", corrupt, "--token-ids", ids],
        /^error: safetensors header length \d+ runs past the end of the file/m,
      ],
      [["model", "inspect", corrupt], /^error: safetensors header length/m],
      [
        ["model", "eval", fixture, "--token-ids", outOfRange],
        /sequence 1: token id 1000 at position 2 is outside the vocabulary \(.*0\.\.999/,
      ],
      [["model", "eval", fixture, "--token-ids", notIds], /not-ids\.txt line 2: "five" is not a token id/],
      [["model", "eval", fixture, "--token-ids", badJson], /bad\.json is not valid JSON/],
      [["model", "eval", fixture, "--token-ids", empty], /empty\.txt is empty/],
      [["model", "eval", fixture, "--token-ids", short], /short\.txt has nothing to score/],
      [
        ["model", "eval", bytesModel, "--text", badJsonl],
        /bad\.jsonl line 2: expected a JSON object with a string "text" field/,
      ],
      [["model", "eval", fixture, "--text", ids], /no tokenizer for this gpt2 model/],
      [["model", "eval", fixture], /give exactly one of --text FILE or --token-ids FILE/],
      [["model", "eval", fixture, "--token-ids", ids, "--backend", "tpu"], /unknown backend "tpu"/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    for (const [i, r] of results.entries()) {
      const [args, pattern] = cases[i]!;
      expect(r.status, args.join(" ")).toBe(1);
      expect(r.stderr, args.join(" ")).toMatch(pattern);
      expect(r.stderr.match(/^error:/gm), args.join(" ")).toHaveLength(1);
      expect(r.stderr, args.join(" ")).not.toMatch(/\bat .*\.ts:\d+/);
      expect(r.stdout).toBe("");
    }
  });
});

describe("deepshard model inspect", () => {
  it("prints the config, the parameter count and the weights id of gpt2-tiny", async () => {
    const [j, h] = await Promise.all([
      run(["model", "inspect", fixture, "--json"]),
      run(["model", "inspect", fixture]),
    ]);
    expect(j.status, j.stderr).toBe(0);
    const info = JSON.parse(j.stdout);
    const { weightsId } = await chunkModel(fixture);
    // wte 1000×64 + wpe 64×64 + 2 blocks of 49,984 + ln_f 128, as transformers' num_parameters().
    expect(info).toMatchObject({
      modelType: "gpt2",
      parameterCount: 168_192,
      vocabSize: 1000,
      contextLength: 64,
      layers: 2,
      tokenizer: "none",
      weightsId,
      checkpoint: { tensors: 28, parameters: 168_192, dtypes: { F32: 28 } },
    });
    expect(info.config).toEqual(JSON.parse(readFileSync(join(fixture, "config.json"), "utf8")));

    expect(h.status, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/^parameters\s+168,192 \(168\.2K\)$/m);
    expect(h.stdout).toMatch(new RegExp(`^weights id\\s+${weightsId}$`, "m"));
    expect(h.stdout).toMatch(/"n_layer": 2/);
  });
});

describe("deepshard model genesis", () => {
  it("pretrains a small genesis model, reproducibly on wasm, with progress on stderr", async () => {
    const tiny = [
      "--steps",
      "3",
      "--embd",
      "32",
      "--layers",
      "1",
      "--heads",
      "2",
      "--batch-size",
      "4",
      "--context",
      "32",
    ];
    const [a, b] = [join(dir, "genesis-a"), join(dir, "genesis-b")];
    const [j, h] = await Promise.all([
      run(["model", "genesis", a, ...tiny, "--backend", "wasm", "--json"]),
      run(["model", "genesis", b, ...tiny, "--backend", "wasm", "--progress-interval", "0"]),
    ]);
    expect(j.status, j.stderr).toBe(0);
    expect(j.stderr).toBe("");
    const info = JSON.parse(j.stdout);
    expect(info).toMatchObject({ backend: "wasm", deterministic: true, tokens: 3 * 4 * 32 });
    expect(info.recipe).toMatchObject({
      steps: 3,
      nEmbd: 32,
      nLayer: 1,
      nHead: 2,
      batchSize: 4,
      context: 32,
    });
    expect(info.weightsId).toBe((await chunkModel(a)).weightsId);
    expect(Number.isFinite(info.finalLoss) && Number.isFinite(info.heldOutLoss)).toBe(true);

    expect(h.status, h.stderr).toBe(0);
    expect(h.stderr).toMatch(/^training the genesis model on wasm \(deterministic\)$/m);
    expect(h.stderr.match(/^step [123]\/3 loss \d+\.\d+, \d+ tok\/s \([\d.]+s\)$/gm)).toHaveLength(3);
    expect(h.stdout).toContain(`weights id     ${info.weightsId}`);
    expect(h.stdout).toContain(`weights digest ${info.digest}`);

    const [again, inspected] = await Promise.all([
      run(["model", "genesis", a, ...tiny]),
      run(["model", "inspect", a, "--json"]),
    ]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^error: .*genesis-a\/config\.json already exists \(.*--force/);
    expect(JSON.parse(inspected.stdout)).toMatchObject({
      weightsId: info.weightsId,
      parameterCount: info.parameterCount,
      tokenizer: "bytes",
      checkpoint: { metadata: { final_loss: info.finalLoss.toFixed(4) } },
    });
  });
});
