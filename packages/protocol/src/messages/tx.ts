/**
 * Transactions: every one is signed by its sender (the envelope's `signer` is the sending
 * account) and carries the chain id, the sender's nonce and the fee it pays.
 */
import { CodecError } from "../codec.ts";
import {
  array,
  bool,
  type Infer,
  literal,
  optional,
  refine,
  type Shape,
  string,
  struct,
  uint,
  union,
  versioned,
} from "../schema.ts";
import {
  amount,
  basisPoints,
  chainId,
  defineMessage,
  hash32,
  hashOf,
  nonce,
  publicKey,
  type Signed,
  signed,
  sortedBy,
  v,
} from "./common.ts";
import { signedVoteSchema } from "./votes.ts";

function tx<const T extends string, const S extends Shape>(type: T, fields: S) {
  return struct({ v, type: literal(type), chainId, nonce, fee: amount, ...fields });
}

export const transferTxSchema = tx("transfer", { to: publicKey, amount });
/** Bonds the sender's own stake as a validator. */
export const bondTxSchema = tx("bond", { amount });
/** Starts unbonding; the stake is released after the genesis unbonding delay. */
export const unbondTxSchema = tx("unbond", { amount });

export const MAX_METADATA_BYTES = 1024;
/** An informant's data submission; the blob travels peer to peer, addressed by `contentHash`. */
export const dataSubmitTxSchema = tx("data.submit", {
  contentHash: hash32,
  /** The blob's size in bytes. */
  size: uint(),
  stake: amount,
  metadata: optional(string({ max: MAX_METADATA_BYTES })),
});

/** The seed's five criteria, in this order wherever a vector is meant. */
export const CRITERIA = ["novelty", "reproducibility", "alignment", "truthfulness", "objectivity"] as const;
export type Criterion = (typeof CRITERIA)[number];
export const scoreVectorSchema = struct({
  novelty: basisPoints,
  reproducibility: basisPoints,
  alignment: basisPoints,
  truthfulness: basisPoints,
  objectivity: basisPoints,
});

export const MAX_SEGMENT_WEIGHTS = 256;
/** A weight for bytes [offset, offset + length) of the blob; unlisted bytes keep weight 1. */
export const segmentWeightSchema = struct({ offset: uint(), length: uint({ min: 1 }), weight: basisPoints });
const segmentWeights = refine(
  array(segmentWeightSchema, { max: MAX_SEGMENT_WEIGHTS, min: 1 }),
  "ascending and non-overlapping",
  (segments, path) => {
    for (let i = 1; i < segments.length; i++) {
      const prev = segments[i - 1]!;
      if (segments[i]!.offset < prev.offset + prev.length) {
        throw new CodecError("OUT_OF_RANGE", "segments must be sorted by offset and must not overlap", {
          path: `${path}[${i}].offset`,
        });
      }
    }
  },
);

/** A validator's score of a data submission. */
export const dataVoteTxSchema = tx("data.vote", {
  /** The hash of the data.submit transaction. */
  submission: hash32,
  scores: scoreVectorSchema,
  segmentWeights: optional(segmentWeights),
});

/** `commitment` = hash(weights ‖ salt), sent before the round's commit deadline. */
export const trainingCommitTxSchema = tx("training.commit", { round: uint(), commitment: hash32 });
export const trainingRevealTxSchema = tx("training.reveal", {
  round: uint(),
  weightsId: hash32,
  salt: hash32,
});

export const MAX_VERDICTS = 128;
export const MAX_REASONS = 4;
/** Short machine-readable reasons, e.g. `no_membership_gap`, `copy`, `too_far`. */
export const reasonCodeSchema = string({ min: 1, max: 32, pattern: /^[a-z0-9_.-]+$/ });
export const trainerVerdictSchema = struct({
  /** The trainer whose submission is judged: one submission per trainer per round. */
  trainer: publicKey,
  accept: bool(),
  reasons: array(reasonCodeSchema, { max: MAX_REASONS }),
});
/** A validator's verdicts on a training round's submissions. */
export const trainingVerdictTxSchema = tx("training.verdict", {
  round: uint(),
  verdicts: sortedBy(trainerVerdictSchema, (verdict) => verdict.trainer, MAX_VERDICTS, "trainer"),
});

/** Buys a license to the weights `weightsId` at the current price, if it is at most `maxPrice`. */
export const weightsBuyTxSchema = tx("weights.buy", { weightsId: hash32, maxPrice: amount });

/** Two conflicting votes signed by one validator (same height, round and type, different block). */
export const evidenceTxSchema = tx("evidence", { voteA: signedVoteSchema, voteB: signedVoteSchema });

/** Every transaction payload schema, one per `type`. */
export const txPayloadVariants = [
  transferTxSchema,
  bondTxSchema,
  unbondTxSchema,
  dataSubmitTxSchema,
  dataVoteTxSchema,
  trainingCommitTxSchema,
  trainingRevealTxSchema,
  trainingVerdictTxSchema,
  weightsBuyTxSchema,
  evidenceTxSchema,
] as const;
export const txPayloadSchema = versioned(v, union("type", txPayloadVariants));

export type TransferTx = Infer<typeof transferTxSchema>;
export type BondTx = Infer<typeof bondTxSchema>;
export type UnbondTx = Infer<typeof unbondTxSchema>;
export type DataSubmitTx = Infer<typeof dataSubmitTxSchema>;
export type ScoreVector = Infer<typeof scoreVectorSchema>;
export type SegmentWeight = Infer<typeof segmentWeightSchema>;
export type DataVoteTx = Infer<typeof dataVoteTxSchema>;
export type TrainingCommitTx = Infer<typeof trainingCommitTxSchema>;
export type TrainingRevealTx = Infer<typeof trainingRevealTxSchema>;
export type TrainerVerdict = Infer<typeof trainerVerdictSchema>;
export type TrainingVerdictTx = Infer<typeof trainingVerdictTxSchema>;
export type WeightsBuyTx = Infer<typeof weightsBuyTxSchema>;
export type EvidenceTx = Infer<typeof evidenceTxSchema>;
export type TxPayload = Infer<typeof txPayloadSchema>;
export type TxType = TxPayload["type"];
export type SignedTx = Signed<TxPayload>;

/**
 * Largest encoding of a signed transaction of each type (envelope included). Each is above the
 * largest value its schema admits (the tests check that), so they bound rather than restrict.
 */
export const TX_MAX_BYTES: Readonly<Record<TxType, number>> = {
  transfer: 512,
  bond: 512,
  unbond: 512,
  "data.submit": 2048,
  "data.vote": 16 * 1024,
  "training.commit": 512,
  "training.reveal": 512,
  "training.verdict": 32 * 1024,
  "weights.buy": 512,
  evidence: 2048,
};
export const MAX_TX_BYTES = Math.max(...Object.values(TX_MAX_BYTES));

export const signedTxSchema = signed(txPayloadSchema);
export const txCodec = defineMessage<SignedTx>(
  "tx",
  signedTxSchema,
  MAX_TX_BYTES,
  (t) => TX_MAX_BYTES[t.payload.type],
);

export const encodeTx = (tx: SignedTx): Uint8Array => txCodec.encode(tx);
export const decodeTx = (bytes: Uint8Array): SignedTx => txCodec.decode(bytes);
/** The transaction id: sha256 of the signed transaction's canonical bytes. */
export const txHash = (tx: SignedTx): Uint8Array => hashOf(txCodec, tx);
