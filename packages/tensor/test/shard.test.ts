import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { merkleProof, merkleRootOfFile, verifyMerkleProof } from "@deepshard/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { INDEX_FILE, openCheckpoint, type TensorEntry, writeCheckpoint } from "../src/safetensors.ts";
import {
  ChunkedWeights,
  chunkLocation,
  chunksByNode,
  chunksForLayers,
  chunksForRanges,
  placeChunks,
  Reassembler,
  reassemble,
  repairAfterLeave,
  repairPlan,
  ShardError,
  tensorsForLayers,
  validateManifest,
  verifyChunk,
} from "../src/shard.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-shard-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A GPT-2-shaped checkpoint with deterministic pseudo-random weights. */
function gpt2Tensors(layers: number, d: number): TensorEntry[] {
  const f = (name: string, shape: number[], seed: number): TensorEntry => ({
    name,
    dtype: "F32",
    shape,
    data: () => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * seed)),
  });
  const out = [f("transformer.wte.weight", [64, d], 1.1), f("transformer.wpe.weight", [16, d], 1.2)];
  for (let i = 0; i < layers; i++) {
    out.push(f(`transformer.h.${i}.ln_1.weight`, [d], 2 + i));
    out.push(f(`transformer.h.${i}.attn.c_attn.weight`, [d, 3 * d], 3 + i));
    out.push(f(`transformer.h.${i}.mlp.c_fc.weight`, [d, 4 * d], 4 + i));
  }
  out.push(f("transformer.ln_f.weight", [d], 9));
  return out;
}

async function expectShardError(p: Promise<unknown>, code: string): Promise<ShardError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ShardError);
  expect((err as ShardError).code).toBe(code);
  return err as ShardError;
}

describe("chunking and the weights id", () => {
  it("the weights id is the RFC 6962 root of the file's chunks, with matching inclusion proofs", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(3, 16));
    const w = await ChunkedWeights.open(model, { chunkSize: 4096 });
    const { manifest } = w;
    const file = join(model, "model.safetensors");
    const bytes = new Uint8Array(await readFile(file));
    const reference = await merkleRootOfFile(file, 4096);
    expect(manifest).toMatchObject({
      version: 1,
      weightsId: Buffer.from(reference.root).toString("hex"),
      chunkSize: 4096,
      chunkCount: Math.ceil(bytes.length / 4096),
      totalSize: bytes.length,
      files: [
        { name: "model.safetensors", size: bytes.length, firstChunk: 0, chunkCount: reference.chunkCount },
      ],
    });
    const chunks = Array.from({ length: manifest.chunkCount }, (_, i) =>
      bytes.subarray(i * 4096, (i + 1) * 4096),
    );
    for (let i = 0; i < manifest.chunkCount; i++) {
      const c = await w.chunk(i);
      expect(c.bytes).toEqual(chunks[i]);
      expect(c.proof).toEqual(merkleProof(chunks, i));
      expect(verifyMerkleProof(reference.root, c.bytes, i, manifest.chunkCount, c.proof)).toBe(true);
      expect(verifyChunk(manifest, i, c.bytes, c.proof)).toBe(true);
    }
    // The default chunk size is 1 MiB: this small model is one chunk.
    expect((await ChunkedWeights.open(model)).manifest.chunkCount).toBe(1);
  });

  it("a sharded checkpoint is chunked index first, then shards, with chunks never spanning files", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(4, 16), { maxShardBytes: 6000 });
    const w = await ChunkedWeights.open(model, { chunkSize: 1000 });
    const names = w.manifest.files.map((f) => f.name);
    expect(names[0]).toBe(INDEX_FILE);
    expect(names.slice(1)).toEqual([...names.slice(1)].sort());
    expect(names.length).toBeGreaterThan(3);
    for (const f of w.manifest.files) {
      const last = chunkLocation(w.manifest, f.firstChunk + f.chunkCount - 1);
      expect(last.file).toBe(f.name);
      expect(last.offset + last.length).toBe(f.size);
    }
  });
});

describe("reassembly", () => {
  it("rebuilds identical files from chunks in any order, verifying each", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(4, 16), { maxShardBytes: 6000 });
    const w = await ChunkedWeights.open(model, { chunkSize: 1000 });
    const out = join(dir, "copy");
    const r = new Reassembler(JSON.parse(JSON.stringify(w.manifest)), out);
    const order = Array.from({ length: w.manifest.chunkCount }, (_, i) => (i * 7) % w.manifest.chunkCount);
    expect(new Set(order).size).toBe(w.manifest.chunkCount);
    for (const i of order.slice(0, -1)) {
      const c = await w.chunk(i);
      await r.add(i, c.bytes, c.proof);
    }
    const err = await expectShardError(r.finish(), "MISSING_CHUNKS");
    expect(err.meta.missing).toEqual([order.at(-1)]);
    const lastChunk = await w.chunk(order.at(-1)!);
    await r.add(lastChunk.index, lastChunk.bytes, lastChunk.proof);
    expect(r.complete).toBe(true);
    await r.finish();
    for (const f of w.manifest.files) {
      expect(await readFile(join(out, f.name))).toEqual(await readFile(join(model, f.name)));
    }
    expect((await readdir(out)).some((n) => n.endsWith(".part"))).toBe(false);
    const ckpt = await openCheckpoint(out);
    expect((await ckpt.readF32("transformer.h.3.mlp.c_fc.weight"))[5]).toBe(Math.fround(Math.sin(5 * 7)));
    await ckpt.close();
  });

  it("takes chunks added concurrently (also the same chunk twice) without losing any", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(4, 16), { maxShardBytes: 6000 });
    const w = await ChunkedWeights.open(model, { chunkSize: 1000 });
    const out = join(dir, "concurrent");
    const r = new Reassembler(w.manifest, out);
    const chunks = await Promise.all(Array.from({ length: w.manifest.chunkCount }, (_, i) => w.chunk(i)));
    await Promise.all([...chunks, chunks[0]!].map((c) => r.add(c.index, c.bytes, c.proof)));
    expect(r.complete).toBe(true);
    await r.finish();
    for (const f of w.manifest.files) {
      expect(await readFile(join(out, f.name))).toEqual(await readFile(join(model, f.name)));
    }
  });

  it("rejects a flipped byte, a wrong proof, a short chunk and a chunk under the wrong index, naming the chunk", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(2, 16));
    const w = await ChunkedWeights.open(model, { chunkSize: 512 });
    const r = new Reassembler(w.manifest, join(dir, "copy"));
    const c = await w.chunk(3);
    const flipped = c.bytes.slice();
    flipped[100]! ^= 0x01;
    const err = await expectShardError(r.add(3, flipped, c.proof), "INVALID_CHUNK");
    expect(err.meta.index).toBe(3);
    expect(err.shortMessage).toContain("chunk 3");
    expect(verifyChunk(w.manifest, 3, flipped, c.proof)).toBe(false);
    await expectShardError(r.add(3, c.bytes, w.proof(4)), "INVALID_CHUNK");
    await expectShardError(r.add(4, c.bytes, c.proof), "INVALID_CHUNK");
    await expectShardError(r.add(3, c.bytes.subarray(1), c.proof), "INVALID_CHUNK");
    await expectShardError(r.add(w.manifest.chunkCount, c.bytes, c.proof), "CHUNK_OUT_OF_RANGE");
    await r.add(3, c.bytes, c.proof);
    expect(r.missing()).not.toContain(3);
    await r.abort();
    expect(await readdir(join(dir, "copy"))).toEqual([]);
  });

  it("reassemble() fetches every chunk and stops at the first bad one", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(2, 16));
    const w = await ChunkedWeights.open(model, { chunkSize: 512 });
    const files = await reassemble(w.manifest, join(dir, "ok"), (i) => w.chunk(i));
    expect(files).toEqual(["model.safetensors"]);
    const err = await expectShardError(
      reassemble(w.manifest, join(dir, "bad"), async (i) => {
        const c = await w.chunk(i);
        if (i === 5) c.bytes[0]! ^= 0xff;
        return c;
      }),
      "INVALID_CHUNK",
    );
    expect(err.meta.index).toBe(5);
    expect(await readdir(join(dir, "bad"))).toEqual([]);
  });

  it("validates manifests from peers", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(1, 8));
    const { manifest } = await ChunkedWeights.open(model, { chunkSize: 256 });
    expect(validateManifest(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest);
    const broken = [
      { ...manifest, weightsId: "zz" },
      { ...manifest, chunkCount: manifest.chunkCount + 1 },
      { ...manifest, totalSize: 1 },
      { ...manifest, chunkSize: 0 },
      {
        ...manifest,
        chunkSize: 1,
        chunkCount: 2 ** 40,
        totalSize: 2 ** 40,
        files: [{ name: "model.safetensors", size: 2 ** 40, firstChunk: 0, chunkCount: 2 ** 40 }],
      },
      { ...manifest, files: [{ ...manifest.files[0]!, name: "../x.safetensors" }] },
      { ...manifest, files: [{ ...manifest.files[0]!, chunkCount: 1 }] },
      null,
    ];
    for (const m of broken) expect(() => validateManifest(m)).toThrow(ShardError);
  });
});

describe("rendezvous placement", () => {
  const weightsId = "ab".repeat(32);
  const nodes = Array.from({ length: 20 }, (_, i) => `node-${i}`);
  const chunks = 3000;
  const r = 3;

  it("gives every chunk r distinct holders and spreads load evenly", () => {
    const placement = placeChunks(weightsId, chunks, nodes, r);
    for (const holders of placement) expect(new Set(holders).size).toBe(r);
    const loads = [...chunksByNode(placement).values()].map((l) => l.length);
    const mean = (chunks * r) / nodes.length;
    expect(loads.length).toBe(nodes.length);
    for (const load of loads) expect(Math.abs(load - mean) / mean).toBeLessThan(0.2);
    expect(placeChunks(weightsId, 2, ["a"], 3)).toEqual([["a"], ["a"]]);
    // Every node computes the same placement, whatever order it learned the node set in.
    expect(placeChunks(weightsId, chunks, [...nodes].reverse(), r)).toEqual(placement);
  });

  it("a join moves only chunks onto the new node: about r/(n+1) of them, one copy each", () => {
    const before = placeChunks(weightsId, chunks, nodes, r);
    const after = placeChunks(weightsId, chunks, [...nodes, "newcomer"], r);
    let moved = 0;
    for (let i = 0; i < chunks; i++) {
      const gained = after[i]!.filter((n) => !before[i]!.includes(n));
      const lost = before[i]!.filter((n) => !after[i]!.includes(n));
      if (gained.length === 0) {
        expect(after[i]).toEqual(before[i]);
        continue;
      }
      moved++;
      expect(gained).toEqual(["newcomer"]);
      // The displaced holder is the one ranked last before.
      expect(lost).toEqual([before[i]![r - 1]]);
    }
    const expected = (chunks * r) / (nodes.length + 1);
    expect(Math.abs(moved - expected) / expected).toBeLessThan(0.15);
    const plan = repairPlan(weightsId, chunks, nodes, [...nodes, "newcomer"], r);
    expect(plan.transfers.length).toBe(moved);
    expect(plan.drops.length).toBe(moved);
    expect(plan.lost).toEqual([]);
  });

  it("a leave changes only the chunks the leaver held, and the repair plan restores r holders", () => {
    const leaving = "node-7";
    const before = placeChunks(weightsId, chunks, nodes, r);
    const remaining = nodes.filter((n) => n !== leaving);
    const after = placeChunks(weightsId, chunks, remaining, r);
    const held = chunksByNode(before).get(leaving)!;
    expect(Math.abs(held.length - (chunks * r) / nodes.length) / ((chunks * r) / nodes.length)).toBeLessThan(
      0.2,
    );
    for (let i = 0; i < chunks; i++) {
      if (!held.includes(i)) expect(after[i]).toEqual(before[i]);
      else expect(after[i]!.filter((n) => !before[i]!.includes(n)).length).toBe(1);
    }
    const plan = repairAfterLeave(weightsId, chunks, nodes, leaving, r);
    expect(plan.lost).toEqual([]);
    expect(plan.drops).toEqual([]);
    expect(plan.transfers.map((t) => t.chunk)).toEqual(held);
    const sources = new Map<string, number>();
    for (const t of plan.transfers) {
      expect(before[t.chunk]).toContain(t.from);
      expect(t.from).not.toBe(leaving);
      expect(after[t.chunk]).toContain(t.to);
      expect(before[t.chunk]).not.toContain(t.to);
      sources.set(t.from, (sources.get(t.from) ?? 0) + 1);
    }
    // Serving is spread over the survivors rather than falling on one node.
    expect(Math.max(...sources.values())).toBeLessThan(held.length / 4);
  });

  it("reports chunks whose every holder left as lost", () => {
    const before = placeChunks(weightsId, 200, nodes, 2);
    const gone = new Set(before[0]);
    const plan = repairPlan(
      weightsId,
      200,
      nodes,
      nodes.filter((n) => !gone.has(n)),
      2,
    );
    expect(plan.lost).toContain(0);
    for (const i of plan.lost) expect(before[i]!.every((n) => gone.has(n))).toBe(true);
    expect(() => placeChunks(weightsId, 1, ["a", "a"], 1)).toThrow(ShardError);
    expect(() => placeChunks(weightsId, 1, ["a"], 0)).toThrow(ShardError);
  });
});

describe("layer ranges", () => {
  const gpt2 = gpt2Tensors(4, 8).map((t) => t.name);
  const llama = [
    "model.embed_tokens.weight",
    ...[0, 1, 2].flatMap((i) => [
      `model.layers.${i}.self_attn.q_proj.weight`,
      `model.layers.${i}.mlp.up_proj.weight`,
    ]),
    "model.norm.weight",
    "lm_head.weight",
  ];

  it("GPT-2: embeddings with the first stage; final norm and the tied embedding with the last", () => {
    expect(tensorsForLayers(gpt2, 0, 1)).toEqual([
      "transformer.wte.weight",
      "transformer.wpe.weight",
      ...gpt2.filter((n) => /\.h\.[01]\./.test(n)),
    ]);
    expect(tensorsForLayers(gpt2, 2, 3)).toEqual([
      "transformer.wte.weight",
      ...gpt2.filter((n) => /\.h\.[23]\./.test(n)),
      "transformer.ln_f.weight",
    ]);
    expect(tensorsForLayers(gpt2, 1, 2)).toEqual(gpt2.filter((n) => /\.h\.[12]\./.test(n)));
    expect(tensorsForLayers(gpt2, 0, 3)).toEqual(gpt2);
  });

  it("Llama: an untied lm_head goes with the last stage only", () => {
    expect(tensorsForLayers(llama, 0, 0)).toEqual(llama.slice(0, 3));
    expect(tensorsForLayers(llama, 1, 2)).toEqual(llama.slice(3));
    expect(() => tensorsForLayers(llama, 2, 3)).toThrow(ShardError);
    expect(() => tensorsForLayers(llama, 2, 1)).toThrow(ShardError);
  });

  it("maps a layer range to the chunks to fetch, leaving out other layers' data", async () => {
    const model = join(dir, "model");
    await writeCheckpoint(model, gpt2Tensors(4, 32), { maxShardBytes: 40_000 });
    const w = await ChunkedWeights.open(model, { chunkSize: 2048 });
    const ckpt = await openCheckpoint(model);
    try {
      const stage = chunksForLayers(w.manifest, ckpt, 2, 3);
      const all = Array.from({ length: w.manifest.chunkCount }, (_, i) => i);
      expect(stage.length).toBeLessThan(all.length * 0.8);
      const needed = tensorsForLayers([...ckpt.tensors.keys()], 2, 3);
      for (const name of needed) {
        const t = ckpt.info(name);
        for (const c of chunksForRanges(w.manifest, [
          { file: t.file, offset: t.byteOffset, length: t.byteLength },
        ])) {
          expect(stage).toContain(c);
        }
      }
      const h0 = ckpt.info("transformer.h.0.mlp.c_fc.weight");
      const inner = chunksForRanges(w.manifest, [
        { file: h0.file, offset: h0.byteOffset + 2048, length: h0.byteLength - 4096 },
      ]);
      for (const c of inner) expect(stage).not.toContain(c);
    } finally {
      await ckpt.close();
    }
  });
});
