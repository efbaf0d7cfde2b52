/**
 * How a round's batch and hyper-parameters become a training run: the one recipe every honest
 * trainer (and a validator training its reference replicas) follows, so that runs on the
 * deterministic backend agree bit for bit.
 *
 * - Each accepted blob is cut into segments as validators score them (`splitSegments`: JSONL
 *   records, else paragraphs); a segment is one example: its text's tokens followed by the
 *   tokenizer's end-of-document token, blobs in batch order, segments in blob order.
 * - An example's loss weight is the mean, over its bytes, of the validators' aggregated segment
 *   weights (basis points; bytes outside every weighted range weigh 10000), divided by 10000.
 * - Hyper-parameters (integers, from the genesis): `learningRateMicro` (lr × 10^6, default 100),
 *   `epochs` (1), `microBatch` (rows per step, 8), optional `steps`, `maxLength`, `warmupSteps`,
 *   `weightDecayMicro`. The data order is seeded with the round's seed (a block hash).
 */
import type { QueueEntry, Round } from "@deepshard/ledger";
import { DeepshardError } from "@deepshard/protocol";
import type { Tokenizer, TrainExample, TrainOptions } from "@deepshard/tensor";
import { splitSegments } from "@deepshard/validator";

const BPS = 10_000;

function int(hp: Round["hyperParameters"], key: string, fallback: number, min: number): number {
  const v = hp[key];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw new DeepshardError("BAD_HYPERPARAMETER", `hyper-parameter ${key} must be an integer ≥ ${min}`, {
      details: `the round names ${JSON.stringify(v)}`,
    });
  }
  return v;
}

export function roundTrainOptions(round: Pick<Round, "hyperParameters" | "seed">): TrainOptions {
  const hp = round.hyperParameters;
  const options: TrainOptions = {
    lr: int(hp, "learningRateMicro", 100, 1) / 1e6,
    epochs: int(hp, "epochs", 1, 1),
    batchSize: int(hp, "microBatch", 8, 1),
    seed: round.seed,
    shuffle: true,
  };
  if (hp.steps !== undefined) options.steps = int(hp, "steps", 1, 1);
  if (hp.maxLength !== undefined) options.maxLength = int(hp, "maxLength", 1, 2);
  if (hp.warmupSteps !== undefined) options.warmupSteps = int(hp, "warmupSteps", 0, 0);
  if (hp.weightDecayMicro !== undefined) options.weightDecay = int(hp, "weightDecayMicro", 0, 0) / 1e6;
  return options;
}

/** Mean weight (0..1) of the bytes [offset, offset + length) under the aggregated segment weights. */
export function segmentWeight(segments: QueueEntry["segments"], offset: number, length: number): number {
  if (length <= 0) return 1;
  let weighted = 0;
  let covered = 0;
  for (const s of segments) {
    const start = Math.max(offset, s.offset);
    const end = Math.min(offset + length, s.offset + s.length);
    if (end <= start) continue;
    weighted += (end - start) * s.weight;
    covered += end - start;
  }
  return (weighted + (length - Math.min(covered, length)) * BPS) / (length * BPS);
}

/** The examples of a batch; `blobs` maps content hashes (hex) to the accepted blobs' bytes. */
export function roundExamples(
  batch: readonly QueueEntry[],
  blobs: ReadonlyMap<string, Uint8Array>,
  tokenizer: Tokenizer,
): TrainExample[] {
  const examples: TrainExample[] = [];
  for (const entry of batch) {
    const blob = blobs.get(entry.contentHash);
    if (!blob) {
      throw new DeepshardError("BATCH_INCOMPLETE", `blob ${entry.contentHash} of the batch is missing`);
    }
    let segments: ReturnType<typeof splitSegments>;
    try {
      segments = splitSegments(blob);
    } catch (cause) {
      // Validators accepted it, so it decoded for them; a blob that is not UTF-8 trains on nothing.
      throw new DeepshardError("BATCH_UNREADABLE", `blob ${entry.contentHash} is not UTF-8 text`, { cause });
    }
    for (const seg of segments) {
      const tokens = [...tokenizer.encode(seg.text), tokenizer.eosTokenId];
      if (tokens.length < 2) continue;
      examples.push({ tokens, weight: segmentWeight(entry.segments, seg.offset, seg.length) });
    }
  }
  return examples;
}
