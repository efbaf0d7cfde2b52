/**
 * Bit-exact replay of one training segment. A trainer on the deterministic backend (single-threaded
 * wasm) records a transcript: digests of its weights and optimizer state every `every` steps. After
 * the commit deadline a beacon picks one segment; the trainer hands over the checkpoint at its start,
 * the validator checks it against the transcript, trains the segment itself and compares the result
 * with the transcript's next entry bit for bit. Cost: one segment, not the run. A trainer who skipped
 * or faked part of its run is caught with the probability that the beacon picks a faked segment (and
 * always when the last entry does not match the weights it submitted).
 */
import { sha256 } from "@deepshard/protocol";
import {
  type CausalLM,
  type ModelConfig,
  modelFromWeights,
  type OptimizerState,
  optimizerDigest,
  Rng,
  readWeights,
  runSteps,
  type TrainExample,
  type TrainOptions,
  trainRange,
  weightsDigest,
} from "@deepshard/tensor";
import { ValidatorError } from "./errors.ts";

export interface TranscriptEntry {
  step: number;
  /** weightsDigest of the model after `step` steps. */
  weights: string;
  /** optimizerDigest of the AdamW state after `step` steps. */
  optimizer: string;
}

/** Entries at steps 0, every, 2·every, …, and the last step. */
export interface Transcript {
  every: number;
  steps: number;
  entries: TranscriptEntry[];
}

/** What a trainer keeps to answer a replay request: the full state at a transcript entry. */
export interface Checkpoint {
  step: number;
  weights: Map<string, Float32Array>;
  optimizer: OptimizerState;
}

const emptyState = (): OptimizerState => ({ step: 0, m: new Map(), v: new Map() });

/**
 * Trains `model` in place as `train(model, examples, options)` would, bit for bit, recording the
 * transcript; `keep` receives each checkpoint (a trainer stores them until the round closes).
 */
export async function trainWithTranscript(
  model: CausalLM,
  examples: readonly TrainExample[],
  options: TrainOptions,
  every: number,
  keep: (checkpoint: Checkpoint) => void = () => {},
): Promise<Transcript> {
  if (!(Number.isInteger(every) && every > 0))
    throw new ValidatorError("INPUT_INVALID", "every must be a positive integer");
  const steps = runSteps(model, examples, options);
  let state = emptyState();
  const entries: TranscriptEntry[] = [
    { step: 0, weights: weightsDigest(model), optimizer: optimizerDigest(state) },
  ];
  keep({ step: 0, weights: readWeights(model), optimizer: state });
  for (let start = 0; start < steps; start += every) {
    const end = Math.min(steps, start + every);
    state = (await trainRange(model, examples, options, { start, end, ...(start > 0 ? { state } : {}) }))
      .state;
    entries.push({ step: end, weights: weightsDigest(model), optimizer: optimizerDigest(state) });
    keep({ step: end, weights: readWeights(model), optimizer: state });
  }
  return { every, steps, entries };
}

/** The segment (index into the transcript's entries) the beacon picks. */
export function chooseSegment(beacon: Uint8Array | string, transcript: Transcript): number {
  const segments = transcript.entries.length - 1;
  if (segments < 1) throw new ValidatorError("TRANSCRIPT_INVALID", "the transcript has no segment");
  const bytes = typeof beacon === "string" ? new TextEncoder().encode(beacon) : beacon;
  return new Rng(Buffer.from(sha256(bytes)).toString("hex")).int(segments);
}

export type ReplayFailure =
  | "transcript_malformed"
  | "base_mismatch"
  | "final_mismatch"
  | "checkpoint_mismatch"
  | "segment_mismatch";

export interface ReplayResult {
  ok: boolean;
  failure?: ReplayFailure;
  segment: number;
  /** Steps replayed. */
  steps: number;
}

/**
 * Checks a transcript's shape against the round (`steps`, start at the base weights, end at the
 * submitted weights), then replays segment `segment` from the trainer's checkpoint.
 */
export async function replaySegment(args: {
  config: ModelConfig;
  examples: readonly TrainExample[];
  options: TrainOptions;
  transcript: Transcript;
  /** weightsDigest of the round's base model and of the submitted model. */
  baseDigest: string;
  submittedDigest: string;
  segment: number;
  checkpoint: Checkpoint;
}): Promise<ReplayResult> {
  const { transcript: t, segment } = args;
  const fail = (failure: ReplayFailure, steps = 0): ReplayResult => ({ ok: false, failure, segment, steps });
  const probe = modelFromWeights(args.config, args.checkpoint.weights);
  let expectedSteps: number;
  try {
    expectedSteps = runSteps(probe, args.examples, args.options);
  } finally {
    probe.dispose();
  }
  const stepsOk =
    t.steps === expectedSteps &&
    t.entries.length === Math.ceil(t.steps / t.every) + 1 &&
    t.entries.every((e, i) => e.step === Math.min(t.steps, i * t.every));
  if (!stepsOk || !(segment >= 0 && segment < t.entries.length - 1)) return fail("transcript_malformed");
  if (t.entries[0]!.weights !== args.baseDigest) return fail("base_mismatch");
  if (t.entries.at(-1)!.weights !== args.submittedDigest) return fail("final_mismatch");
  const from = t.entries[segment]!;
  const to = t.entries[segment + 1]!;
  const model = modelFromWeights(args.config, args.checkpoint.weights);
  try {
    if (
      args.checkpoint.step !== from.step ||
      args.checkpoint.optimizer.step !== from.step ||
      weightsDigest(model) !== from.weights ||
      optimizerDigest(args.checkpoint.optimizer) !== from.optimizer
    ) {
      return fail("checkpoint_mismatch");
    }
    const { state } = await trainRange(model, args.examples, args.options, {
      start: from.step,
      end: to.step,
      ...(from.step > 0 ? { state: args.checkpoint.optimizer } : {}),
    });
    const steps = to.step - from.step;
    if (weightsDigest(model) !== to.weights || optimizerDigest(state) !== to.optimizer) {
      return fail("segment_mismatch", steps);
    }
    return { ok: true, segment, steps };
  } finally {
    model.dispose();
  }
}
