/**
 * The weights validator's tensor work on a model the size of the devnet's genesis (tensor's
 * GENESIS_DEFAULTS: d 256, 4 layers, context 64): why it runs in a worker thread, and what a round
 * costs. Rows: the longest the daemon's event loop stalls while a replica trains inline (as on the
 * daemon's thread) and while it trains in the worker (target: the data validator's 250 ms; beside
 * it the stall of an idle loop over as long, which is the shared machine's load); a replica's training per step in the worker;
 * the probes; one model's fingerprint; the judgement of a round of four submissions from
 * fingerprints already taken (what is left for the verdict window).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { QueueEntry } from "@deepshard/ledger";
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import {
  BYTE_EOS,
  BYTE_TOKENIZER_CLASS,
  BYTE_VOCAB,
  createModel,
  GENESIS_DEFAULTS,
  genesisCorpus,
  gpt2ConfigJson,
  initBackend,
  loadModel,
  saveModel,
  tokenizerFor,
  train,
} from "@deepshard/tensor";
import { roundExamples, roundTrainOptions } from "../src/node/roles/trainer/recipe.ts";
import { TensorWorker } from "../src/node/roles/weights-validator/tensor-worker.ts";

/** Longest gap (ms) between the ticks of a 5 ms timer while `work` runs, beyond the 5 ms. */
async function stallMs(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last - 5);
    last = now;
  }, 5);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(max, performance.now() - last - 5);
}

const bench: BenchModule = async (ctx) => {
  const steps = ctx.quick ? 2 : 6;
  const dir = await mkdtemp(join(tmpdir(), "deepshard-bench-weights-"));
  const worker = new TensorWorker();
  const rows: BenchRow[] = [];
  const row = (metric: string, value: number, unit: string, target?: string, pass?: boolean) =>
    rows.push({ package: "cli", metric: `weights validator: ${metric}`, value, unit, target, pass });
  try {
    await initBackend({ backend: "wasm" });
    const g = GENESIS_DEFAULTS;
    const config = gpt2ConfigJson({
      vocabSize: BYTE_VOCAB,
      nPositions: g.context,
      nEmbd: g.nEmbd,
      nLayer: g.nLayer,
      nHead: g.nHead,
      bosTokenId: BYTE_EOS,
      eosTokenId: BYTE_EOS,
      tokenizerClass: BYTE_TOKENIZER_CLASS,
    });
    const baseDir = join(dir, "base");
    const genesis = createModel(config, { seed: "bench-weights-validator" });
    await saveModel(genesis, baseDir);
    genesis.dispose();
    const blob = new TextEncoder().encode(genesisCorpus(256, "bench-batch").join("\n\n"));
    const entries: QueueEntry[] = [
      { contentHash: "00".repeat(32), size: blob.length, value: 5000, segments: [] },
    ];
    const batch = { key: "bench", entries, blobs: new Map([[entries[0]!.contentHash, blob]]) };
    const recipe = {
      hyperParameters: { learningRateMicro: 100, epochs: 1, microBatch: 8, steps },
      seed: "ab",
    };

    // Inline, as on the daemon's thread (one step's pause for the event loop after each step).
    const model = await loadModel(baseDir);
    const examples = roundExamples(entries, batch.blobs, tokenizerFor(model.config));
    const inline = await stallMs(() =>
      train(model, examples, {
        ...roundTrainOptions(recipe),
        onProgress: () => new Promise((r) => setImmediate(r)),
      }),
    );
    model.dispose();
    row("event-loop stall, replica trained inline", inline, "ms");

    // In the worker, started first (thread and tfjs) by building the probes.
    let t = performance.now();
    const probes = await worker.probes({ baseDir, batch, heldOutBlobs: [], beacon: "ff".repeat(32) });
    row("worker start and probes built", performance.now() - t, "ms");
    let trainMs = 0;
    const workerStall = await stallMs(async () => {
      const t0 = performance.now();
      await worker.train({ baseDir, batch, recipe, seed: "r0", outDir: join(dir, "r0") });
      await worker.train({ baseDir, batch, recipe, seed: "r1", outDir: join(dir, "r1") });
      trainMs = (performance.now() - t0) / 2;
    });
    // What the machine's load alone costs the event loop over as long (the box is shared).
    const idle = await stallMs(() => new Promise((r) => setTimeout(r, trainMs * 2)));
    row("event-loop stall, idle for as long (machine load)", idle, "ms");
    row("event-loop stall, replica trained in the worker", workerStall, "ms", "<= 250", workerStall <= 250);
    row("replica training per step (worker)", trainMs / steps, "ms");

    const others = ["s0", "s1"];
    for (const seed of others) {
      await worker.train({ baseDir, batch, recipe, seed, outDir: join(dir, seed) });
    }
    const request = { probesKey: probes.key, probes: probes.probes };
    t = performance.now();
    await worker.fingerprint({ ...request, dirs: [baseDir] });
    row("fingerprint of one model", performance.now() - t, "ms");
    await worker.fingerprint({
      ...request,
      dirs: [join(dir, "r0"), join(dir, "r1"), ...others.map((s) => join(dir, s))],
    });
    t = performance.now();
    await worker.judge({
      ...request,
      baseDir,
      referenceDirs: [join(dir, "r0"), join(dir, "r1")],
      submissions: [
        { id: "base", dir: baseDir, replayed: false },
        { id: "exact", dir: join(dir, "r0"), replayed: true },
        ...others.map((s) => ({ id: s, dir: join(dir, s), replayed: false })),
      ],
    });
    row("judgement of 4 submissions, fingerprints taken", performance.now() - t, "ms");
  } finally {
    await worker.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
};

export default bench;
