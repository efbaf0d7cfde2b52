/**
 * safetensors load throughput of a ~100 MB checkpoint (every tensor into its typed array, with
 * `readAll`; tensor-by-tensor `read` beside it for information),
 * beside a raw `fs.readFile` of the same file in the same run. Target: load >= 50% of raw.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import { SafetensorsFile, type TensorEntry, writeSafetensors } from "../src/safetensors.ts";

/** A GPT-2-like mix: a few large matrices and many small vectors. */
function tensors(totalMiB: number): TensorEntry[] {
  const d = 768;
  const out: TensorEntry[] = [];
  let bytes = 0;
  for (let layer = 0; bytes < totalMiB * 2 ** 20; layer++) {
    for (const [name, shape] of [
      ["ln_1.weight", [d]],
      ["ln_1.bias", [d]],
      ["attn.c_attn.weight", [d, 3 * d]],
      ["attn.c_attn.bias", [3 * d]],
      ["attn.c_proj.weight", [d, d]],
      ["mlp.c_fc.weight", [d, 4 * d]],
      ["mlp.c_proj.weight", [4 * d, d]],
    ] as const) {
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      bytes += 4 * n;
      out.push({
        name: `transformer.h.${layer}.${name}`,
        dtype: "F32",
        shape: [...shape],
        data: () => Float32Array.from({ length: n }, (_, i) => (i % 1000) / 1000),
      });
    }
  }
  return out;
}

/** Median milliseconds of each function, run in rounds (one call of each per round) after a warm-up. */
async function interleavedMedians(rounds: number, fns: (() => Promise<unknown>)[]): Promise<number[]> {
  const times = fns.map(() => [] as number[]);
  for (let r = -1; r < rounds; r++) {
    for (const [i, fn] of fns.entries()) {
      const t0 = performance.now();
      await fn();
      if (r >= 0) times[i]!.push(performance.now() - t0);
    }
  }
  return times.map((t) => {
    t.sort((a, b) => a - b);
    const mid = t.length >> 1;
    return t.length % 2 ? t[mid]! : (t[mid - 1]! + t[mid]!) / 2;
  });
}

const bench: BenchModule = async (ctx) => {
  const dir = await mkdtemp(join(tmpdir(), "deepshard-bench-st-"));
  try {
    const path = join(dir, "model.safetensors");
    const { size } = await writeSafetensors(path, tensors(ctx.quick ? 24 : 100));
    const mb = size / 1e6;
    const repeats = ctx.quick ? 3 : 7;
    ctx.log(`safetensors: ${mb.toFixed(1)} MB file, median of ${repeats} runs each`);
    // Interleaved rounds, so that a busy neighbour on a shared machine slows all three alike.
    const [raw, load, oneByOne] = await interleavedMedians(repeats, [
      () => readFile(path),
      async () => {
        const file = await SafetensorsFile.open(path);
        await file.readAll();
        await file.close();
      },
      async () => {
        const file = await SafetensorsFile.open(path);
        for (const name of file.tensors.keys()) await file.read(name);
        await file.close();
      },
    ]);
    const rawMBs = mb / (raw / 1000);
    const loadMBs = mb / (load / 1000);
    const ratio = (100 * loadMBs) / rawMBs;
    const rows: BenchRow[] = [
      { package: "tensor", metric: "safetensors file size", value: mb, unit: "MB" },
      { package: "tensor", metric: "raw fs.readFile", value: rawMBs, unit: "MB/s" },
      { package: "tensor", metric: "safetensors load (readAll)", value: loadMBs, unit: "MB/s" },
      {
        package: "tensor",
        metric: "safetensors read, tensor by tensor",
        value: mb / (oneByOne / 1000),
        unit: "MB/s",
      },
      {
        package: "tensor",
        metric: "safetensors load / raw read",
        value: ratio,
        unit: "%",
        target: ">= 50%",
        pass: ratio >= 50,
      },
    ];
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

export default bench;
