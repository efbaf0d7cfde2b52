import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend.ts";
import { generate } from "../src/generate.ts";
import { genesisCorpus, writeGenesis } from "../src/genesis.ts";
import { loadModel, modelInfo, weightsDigest } from "../src/model.ts";
import { tokenizerFor } from "../src/tokenizer.ts";

let dir: string;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  dir = await mkdtemp(join(tmpdir(), "ds-genesis-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("genesis corpus", () => {
  it("is seeded, ASCII, and its arithmetic, order and parity sentences are true", () => {
    const docs = genesisCorpus(3000, "check");
    expect(genesisCorpus(3000, "check")).toEqual(docs);
    expect(genesisCorpus(50, "other")).not.toEqual(docs.slice(0, 50));
    const text = docs.join(" ");
    expect(/^[\x20-\x7e]*$/.test(text)).toBe(true);
    let checked = 0;
    for (const m of text.matchAll(/(\d+) (plus|minus|times) (\d+) is (\d+)\./g)) {
      const [a, op, b, c] = [Number(m[1]), m[2], Number(m[3]), Number(m[4])];
      expect(op === "plus" ? a + b : op === "minus" ? a - b : a * b).toBe(c);
      checked++;
    }
    for (const m of text.matchAll(/(\d+) is (greater than|less than|equal to) (\d+)\./g)) {
      const [a, rel, b] = [Number(m[1]), m[2], Number(m[3])];
      expect(rel === "greater than" ? a > b : rel === "less than" ? a < b : a === b).toBe(true);
      checked++;
    }
    for (const m of text.matchAll(/(\d+) is an (even|odd) number\./g)) {
      expect(Number(m[1]) % 2 === 0).toBe(m[2] === "even");
      checked++;
    }
    expect(checked).toBeGreaterThan(1000);
  });
});

describe("genesis model", () => {
  it("a tiny run trains, writes a loadable byte-level model and replays bit for bit", async () => {
    const tiny = {
      steps: 12,
      batchSize: 4,
      context: 32,
      nEmbd: 32,
      nLayer: 1,
      nHead: 2,
      lr: 1e-2,
      seed: "test",
    };
    const losses: number[] = [];
    const info = await writeGenesis(join(dir, "a"), { ...tiny, onProgress: (p) => void losses.push(p.loss) });
    expect(losses).toHaveLength(12);
    expect(info.finalLoss).toBeLessThan(losses[0]!);
    expect(Number.isFinite(info.heldOutLoss)).toBe(true);
    const model = await loadModel(join(dir, "a"));
    expect(modelInfo(model).parameterCount).toBe(info.parameterCount);
    expect(weightsDigest(model)).toBe(info.digest);
    const tok = tokenizerFor(model.config);
    expect(tok.kind).toBe("bytes");
    const out = await generate(model, tok.encode("3 plus 4 is "), { greedy: true, maxNewTokens: 4 });
    expect(out.tokens.length).toBeGreaterThan(0);
    model.dispose();
    const again = await writeGenesis(join(dir, "b"), tiny);
    expect(again.digest).toBe(info.digest);
  });
});
