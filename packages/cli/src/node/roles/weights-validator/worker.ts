/**
 * The weights validator's tensor work, in a worker thread: a training step of the devnet's genesis
 * model holds a thread for 0.7–2.5 s and fingerprinting a model for about 2 s, which on the
 * daemon's thread would stall consensus. The worker runs its own tfjs on the single-threaded wasm
 * backend (the deterministic one trainers use, so a replica of the round's recipe matches an
 * honest trainer's weights bit for bit) and keeps the round's fingerprints in memory, so the
 * judgement at the start of the verdict window only compares them.
 *
 * Tokenizing the batch happens here too (GPT-2's tokenizer takes seconds on a few MiB of text).
 * Requests are answered in order, one at a time (tfjs runs one kernel at a time anyway).
 */
import { parentPort } from "node:worker_threads";
import type { QueueEntry, Round } from "@deepshard/ledger";
import { DeepshardError } from "@deepshard/protocol";
import {
  initBackend,
  loadConfig,
  loadModel,
  saveModel,
  type Tokenizer,
  type TrainExample,
  tokenizerFor,
  train,
} from "@deepshard/tensor";
import {
  type Fingerprint,
  fingerprint,
  type JudgeInput,
  judgeRound,
  type ProbeSets,
  type RoundJudgement,
  weightDistance2,
} from "@deepshard/validator";
import { roundExamples, roundTrainOptions } from "../trainer/recipe.ts";
import { type RoundProbes, roundProbes } from "./probes.ts";

/** A round's batch: its entries and their blobs by content hash; `key` names it (the batch root). */
export interface BatchInput {
  key: string;
  entries: readonly QueueEntry[];
  blobs: ReadonlyMap<string, Uint8Array>;
}

export type WorkerRequest =
  | {
      /** Trains the base on the batch with the round's recipe (trainer/recipe.ts) and `seed`. */
      op: "train";
      baseDir: string;
      batch: BatchInput;
      recipe: Pick<Round, "hyperParameters" | "seed">;
      seed: string;
      /** An empty folder the trained model is saved in. */
      outDir: string;
    }
  | {
      op: "probes";
      baseDir: string;
      batch: BatchInput;
      heldOutBlobs: Uint8Array[];
      beacon: string;
    }
  | {
      op: "fingerprint";
      /** Probes of the round; a different key drops the fingerprints of the previous one. */
      probesKey: string;
      probes: ProbeSets;
      dirs: string[];
    }
  | {
      op: "judge";
      probesKey: string;
      probes: ProbeSets;
      baseDir: string;
      referenceDirs: string[];
      submissions: { id: string; dir: string; replayed: boolean }[];
      thresholds?: JudgeInput["thresholds"];
    };

export interface TrainReply {
  examples: number;
  steps: number;
  finalLoss: number;
}

export interface JudgeReply {
  /** Undefined when the references agree bit for bit: the recipe leaves no honest band to judge in. */
  judgement: RoundJudgement | undefined;
  /** Submissions that are no model of the base's architecture (left out of the judgement). */
  invalid: { id: string; error: string }[];
}

export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string } };

let fingerprints = new Map<string, Fingerprint>();
let currentProbes = "";
let backend: Promise<unknown> | undefined;
let tokenized:
  | { key: string; examples: TrainExample[]; tokenizer: Tokenizer; maxPositions: number }
  | undefined;

/** The batch's examples, tokenized once per base and batch. */
async function examplesOf(baseDir: string, batch: BatchInput) {
  const key = `${baseDir}\n${batch.key}`;
  if (tokenized?.key !== key) {
    const config = await loadConfig(baseDir);
    const tokenizer = tokenizerFor(config);
    const examples = roundExamples(batch.entries, batch.blobs, tokenizer);
    tokenized = { key, examples, tokenizer, maxPositions: config.maxPositions };
  }
  return tokenized;
}

async function fingerprintOf(dir: string, probesKey: string, probes: ProbeSets): Promise<Fingerprint> {
  if (probesKey !== currentProbes) {
    fingerprints = new Map();
    currentProbes = probesKey;
  }
  let fp = fingerprints.get(dir);
  if (!fp) {
    const model = await loadModel(dir);
    try {
      fp = fingerprint(model, probes);
    } finally {
      model.dispose();
    }
    fingerprints.set(dir, fp);
  }
  return fp;
}

async function handle(req: WorkerRequest): Promise<unknown> {
  backend ??= initBackend({ backend: "wasm" });
  await backend;
  switch (req.op) {
    case "train": {
      const { examples } = await examplesOf(req.baseDir, req.batch);
      const options = { ...roundTrainOptions(req.recipe), seed: req.seed };
      const model = await loadModel(req.baseDir);
      try {
        const result = await train(model, examples, options);
        await saveModel(model, req.outDir);
        const last = result.losses.slice(-5);
        return {
          examples: examples.length,
          steps: result.steps,
          finalLoss: last.reduce((a, b) => a + b, 0) / Math.max(1, last.length),
        } satisfies TrainReply;
      } finally {
        model.dispose();
      }
    }
    case "probes": {
      const { examples, tokenizer, maxPositions } = await examplesOf(req.baseDir, req.batch);
      return roundProbes({
        examples,
        heldOutBlobs: req.heldOutBlobs,
        tokenizer,
        maxPositions,
        beacon: req.beacon,
      }) satisfies RoundProbes;
    }
    case "fingerprint":
      for (const dir of req.dirs) await fingerprintOf(dir, req.probesKey, req.probes);
      return null;
    case "judge": {
      const at = (dir: string) => fingerprintOf(dir, req.probesKey, req.probes);
      const base = await at(req.baseDir);
      const references: Fingerprint[] = [];
      for (const dir of req.referenceDirs) references.push(await at(dir));
      if (references.every((r) => weightDistance2(r, references[0]!) === 0)) {
        return { judgement: undefined, invalid: [] } satisfies JudgeReply;
      }
      const submissions = [];
      const invalid: JudgeReply["invalid"] = [];
      for (const s of req.submissions) {
        try {
          const fp = await at(s.dir);
          // Throws MODEL_MISMATCH for another architecture, so one bad model cannot fail the round.
          weightDistance2(fp, base);
          submissions.push({ id: s.id, fingerprint: fp, ...(s.replayed ? { replay: { ok: true } } : {}) });
        } catch (err) {
          invalid.push({ id: s.id, error: err instanceof Error ? err.message : String(err) });
        }
      }
      return {
        invalid,
        judgement: judgeRound({
          base,
          references,
          submissions,
          ...(req.thresholds ? { thresholds: req.thresholds } : {}),
        }),
      } satisfies JudgeReply;
    }
  }
}

const port = parentPort;
if (port) {
  let queue: Promise<void> = Promise.resolve();
  port.on("message", (msg: { id: number; req: WorkerRequest }) => {
    queue = queue.then(async () => {
      let reply: WorkerReply;
      try {
        reply = { id: msg.id, ok: true, result: await handle(msg.req) };
      } catch (err) {
        const code = err instanceof DeepshardError ? err.code : "WORKER_FAILED";
        const message = err instanceof Error ? err.message : String(err);
        reply = { id: msg.id, ok: false, error: { code, message } };
      }
      port.postMessage(reply);
    });
  });
}
