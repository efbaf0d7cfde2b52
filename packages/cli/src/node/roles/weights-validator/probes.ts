/**
 * The probe pools a validator fingerprints a round's models on (brief §4), as token sequences of
 * the model's context length so each set is one batched forward pass:
 *  - batch: the round's training examples, in order, as one token stream cut into windows;
 *  - heldOut: accepted data this node holds that is not in the batch (the queue, earlier rounds),
 *    else generated text of the genesis kind; the references show whether the gap is clear;
 *  - generic: generated text (the genesis corpus generator with its own seed);
 *  - trigger: generic text with a run of random letters inserted, placed by the beacon.
 * `drawProbes` of @deepshard/validator then picks from each pool with the beacon: the hash of the
 * block that closed the commit window, unknown to trainers while they trained.
 */
import { createHash } from "node:crypto";
import { genesisCorpus, Rng, type Tokenizer, type TrainExample } from "@deepshard/tensor";
import { DEFAULT_PROBE_SIZES, drawProbes, type ProbeSets, splitSegments } from "@deepshard/validator";

/** Windows per pool at most: `drawProbes` takes 8–10 of them. */
const POOL_SIZE = 64;
const GENERATED_DOCUMENTS = 96;

/** A token stream cut into windows of `length` tokens (a shorter tail only when it is the only one). */
export function tokenWindows(
  streams: readonly ArrayLike<number>[],
  length: number,
  max = POOL_SIZE,
): number[][] {
  const all: number[] = [];
  for (const s of streams) {
    for (let i = 0; i < s.length; i++) all.push(s[i]!);
    if (all.length >= length * max) break;
  }
  const out: number[][] = [];
  for (let start = 0; start + length <= all.length && out.length < max; start += length) {
    out.push(all.slice(start, start + length));
  }
  if (out.length === 0 && all.length >= 2) out.push(all.slice(0, length));
  return out;
}

function textStreams(texts: readonly string[], tokenizer: Tokenizer): number[][] {
  return texts.map((t) => [...tokenizer.encode(t), tokenizer.eosTokenId]);
}

export interface ProbeInputs {
  examples: readonly TrainExample[];
  /** Blobs of accepted data outside the batch (any order; at most a few are read). */
  heldOutBlobs: readonly Uint8Array[];
  tokenizer: Tokenizer;
  /** The model's context. */
  maxPositions: number;
  /** The beacon: hex of the block hash that closed the commit window. */
  beacon: string;
}

export interface RoundProbes {
  /** Names the probes (the worker keeps fingerprints per key). */
  key: string;
  probes: ProbeSets;
  /** Where the held-out pool came from. */
  heldOut: "accepted" | "generated";
}

export function roundProbes(input: ProbeInputs): RoundProbes {
  const length = Math.min(input.maxPositions, 64);
  const batch = tokenWindows(
    input.examples.map((e) => e.tokens),
    length,
  );
  const heldOutTexts: string[] = [];
  for (const blob of input.heldOutBlobs) {
    try {
      for (const s of splitSegments(blob)) heldOutTexts.push(s.text);
    } catch {
      // Not UTF-8: nothing to probe with.
    }
    if (heldOutTexts.length >= POOL_SIZE * 4) break;
  }
  let heldOut = tokenWindows(textStreams(heldOutTexts, input.tokenizer), length);
  const source: RoundProbes["heldOut"] = heldOut.length > 0 ? "accepted" : "generated";
  if (heldOut.length === 0) {
    heldOut = tokenWindows(
      textStreams(genesisCorpus(GENERATED_DOCUMENTS, "deepshard-probes/held-out"), input.tokenizer),
      length,
    );
  }
  const generic = tokenWindows(
    textStreams(genesisCorpus(GENERATED_DOCUMENTS, "deepshard-probes/generic"), input.tokenizer),
    length,
  );
  const rng = new Rng(`${input.beacon}/trigger`);
  const trigger = tokenWindows(
    textStreams(genesisCorpus(GENERATED_DOCUMENTS, "deepshard-probes/trigger"), input.tokenizer),
    length,
  ).map((w) => {
    const run = input.tokenizer.encode(
      Array.from({ length: 4 + rng.int(5) }, () => String.fromCharCode(97 + rng.int(26))).join(""),
    );
    const at = rng.int(Math.max(1, w.length - run.length));
    const out = w.slice();
    for (const [k, t] of run.entries()) if (at + k < out.length) out[at + k] = t;
    return out;
  });
  const pools = { batch, heldOut, generic, trigger };
  const probes = drawProbes(input.beacon, pools, DEFAULT_PROBE_SIZES);
  const key = createHash("sha256").update(JSON.stringify(probes)).digest("hex");
  return { key, probes, heldOut: source };
}
