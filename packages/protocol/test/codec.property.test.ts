/**
 * Property tests of the canonical codec and every message codec. FUZZ_RUNS inputs per property
 * (10,000 by default; `npm run fuzz` runs 100,000).
 */
import { deepStrictEqual } from "node:assert/strict";
import fc from "fast-check";
import { describe, it } from "vitest";
import {
  type BlobRequest,
  type BlobResponse,
  type Block,
  blobRequestCodec,
  blobResponseCodec,
  blockCodec,
  type CborValue,
  CodecError,
  type Commit,
  type ConsensusMessage,
  commitCodec,
  compareBytes,
  consensusCodec,
  decode,
  encode,
  type Header,
  headerCodec,
  MAX_DEPTH,
  type MessageCodec,
  type SignedTx,
  type SignedVote,
  type SyncRequest,
  type SyncResponse,
  syncRequestCodec,
  syncResponseCodec,
  type TxPayload,
  txCodec,
  U64_MAX,
  type WeightsRequest,
  type WeightsResponse,
  weightsRequestCodec,
  weightsResponseCodec,
} from "../src/index.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const params = { numRuns: RUNS };

// Decoded maps have Object.prototype; fast-check's records would otherwise have none.
const record = ((model: Record<string, fc.Arbitrary<unknown>>, constraints?: object) =>
  fc.record(model, { ...constraints, noNullPrototype: true })) as typeof fc.record;
const bytesOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const hash = bytesOf(32);
const publicKey = bytesOf(32);
const signature = bytesOf(64);
// Mix small values (short CBOR heads) with the full range.
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 30n }), fc.bigInt({ min: 0n, max: U64_MAX }));
const uint = fc.oneof(fc.nat(30), fc.nat(), fc.maxSafeNat());
const bp = fc.integer({ min: 0, max: 10_000 });
const lowerDigits = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789");
const lowerDigitsPunct = fc.oneof(lowerDigits, fc.constantFrom(".", "_", "-"));
const chainId = fc
  .tuple(lowerDigits, fc.string({ unit: lowerDigitsPunct, maxLength: 63 }))
  .map(([first, rest]) => first + rest);
const reasonCode = fc.string({ unit: lowerDigitsPunct, minLength: 1, maxLength: 32 });
/** Items with distinct keys, sorted by key: one canonical order. */
const sortedUnique = <T>(item: fc.Arbitrary<T>, key: (item: T) => Uint8Array, maxLength: number) =>
  fc
    .uniqueArray(item, { maxLength, comparator: (a, b) => compareBytes(key(a), key(b)) === 0 })
    .map((items) => items.sort((a, b) => compareBytes(key(a), key(b))));

const txBase = { v: fc.constant(1 as const), chainId, nonce: u64, fee: u64 };
const vote = record({
  v: fc.constant(1 as const),
  type: fc.constantFrom("prevote" as const, "precommit" as const),
  chainId,
  height: uint,
  round: uint,
  blockHash: fc.option(hash, { nil: null }),
});
const signedVote: fc.Arbitrary<SignedVote> = record({ payload: vote, signer: publicKey, signature });

const txPayloads: { [T in TxPayload["type"]]: fc.Arbitrary<Extract<TxPayload, { type: T }>> } = {
  transfer: record({ ...txBase, type: fc.constant("transfer" as const), to: publicKey, amount: u64 }),
  bond: record({ ...txBase, type: fc.constant("bond" as const), amount: u64 }),
  unbond: record({ ...txBase, type: fc.constant("unbond" as const), amount: u64 }),
  "data.submit": record(
    {
      ...txBase,
      type: fc.constant("data.submit" as const),
      contentHash: hash,
      size: uint,
      stake: u64,
      metadata: fc.string({ unit: "binary", maxLength: 256 }),
    },
    { requiredKeys: ["v", "type", "chainId", "nonce", "fee", "contentHash", "size", "stake"] },
  ),
  "data.vote": record(
    {
      ...txBase,
      type: fc.constant("data.vote" as const),
      submission: hash,
      scores: record({ novelty: bp, reproducibility: bp, alignment: bp, truthfulness: bp, objectivity: bp }),
      segmentWeights: fc
        .array(record({ gap: fc.nat(1000), length: fc.integer({ min: 1, max: 1 << 20 }), weight: bp }), {
          minLength: 1,
          maxLength: 8,
        })
        .map((segments) => {
          let offset = 0;
          return segments.map(({ gap, length, weight }) => {
            offset += gap;
            const segment = { offset, length, weight };
            offset += length;
            return segment;
          });
        }),
    },
    { requiredKeys: ["v", "type", "chainId", "nonce", "fee", "submission", "scores"] },
  ),
  "training.commit": record({
    ...txBase,
    type: fc.constant("training.commit" as const),
    round: uint,
    commitment: hash,
  }),
  "training.reveal": record({
    ...txBase,
    type: fc.constant("training.reveal" as const),
    round: uint,
    weightsId: hash,
    salt: hash,
  }),
  "training.verdict": record({
    ...txBase,
    type: fc.constant("training.verdict" as const),
    round: uint,
    verdicts: sortedUnique(
      record({ trainer: publicKey, accept: fc.boolean(), reasons: fc.array(reasonCode, { maxLength: 4 }) }),
      (v) => v.trainer,
      6,
    ),
  }),
  "weights.buy": record({
    ...txBase,
    type: fc.constant("weights.buy" as const),
    weightsId: hash,
    maxPrice: u64,
  }),
  evidence: record({
    ...txBase,
    type: fc.constant("evidence" as const),
    voteA: signedVote,
    voteB: signedVote,
  }),
};
const signedTxOf = (payload: fc.Arbitrary<TxPayload>): fc.Arbitrary<SignedTx> =>
  record({ payload, signer: publicKey, signature });
const anySignedTx = signedTxOf(fc.oneof(...Object.values(txPayloads)));

const header: fc.Arbitrary<Header> = record({
  v: fc.constant(1 as const),
  chainId,
  height: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  time: uint,
  prevHash: hash,
  txRoot: hash,
  appHash: hash,
  proposer: publicKey,
  lastCommitHash: hash,
});
const commit: fc.Arbitrary<Commit> = record({
  v: fc.constant(1 as const),
  height: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  round: uint,
  blockHash: hash,
  signatures: sortedUnique(record({ validator: publicKey, signature }), (s) => s.validator, 4),
});
const blockWith = (maxTxs: number): fc.Arbitrary<Block> =>
  record({
    v: fc.constant(1 as const),
    header,
    txs: fc.array(anySignedTx, { maxLength: maxTxs }),
    lastCommit: fc.option(commit, { nil: null }),
  });
const block = blockWith(3);
const consensusMessage: fc.Arbitrary<ConsensusMessage> = fc.oneof(
  record({
    v: fc.constant(1 as const),
    type: fc.constant("proposal" as const),
    proposal: record({
      payload: record({
        v: fc.constant(1 as const),
        type: fc.constant("proposal" as const),
        chainId,
        height: uint,
        round: uint,
        polRound: fc.integer({ min: -1, max: Number.MAX_SAFE_INTEGER }),
        blockHash: hash,
      }),
      signer: publicKey,
      signature,
    }),
    block: blockWith(1),
  }),
  record({ v: fc.constant(1 as const), type: fc.constant("vote" as const), vote: signedVote }),
);
const blobRequest: fc.Arbitrary<BlobRequest> = record({
  v: fc.constant(1 as const),
  type: fc.constant("blob.request" as const),
  hash,
  offset: uint,
  length: fc.integer({ min: 1, max: 1 << 20 }),
});
const blobErrorReason = fc.constantFrom(
  "not_found" as const,
  "no_license" as const,
  "bad_range" as const,
  "busy" as const,
);
const blobResponse: fc.Arbitrary<BlobResponse> = fc.oneof(
  record({
    v: fc.constant(1 as const),
    type: fc.constant("blob.chunk" as const),
    hash,
    offset: uint,
    totalSize: uint,
    data: fc.uint8Array({ maxLength: 300 }),
  }),
  record({
    v: fc.constant(1 as const),
    type: fc.constant("blob.error" as const),
    hash,
    reason: blobErrorReason,
  }),
);
const chunkIndex = fc.oneof(fc.nat(30), fc.nat((1 << 24) - 1));
const weightsRequest: fc.Arbitrary<WeightsRequest> = fc.oneof(
  record({
    v: fc.constant(1 as const),
    type: fc.constant("weights.chunk.request" as const),
    weightsId: hash,
    index: chunkIndex,
  }),
  record({
    v: fc.constant(1 as const),
    type: fc.constant("weights.manifest.request" as const),
    weightsId: hash,
  }),
);
const weightsResponse: fc.Arbitrary<WeightsResponse> = fc.oneof(
  record({
    v: fc.constant(1 as const),
    type: fc.constant("weights.chunk" as const),
    weightsId: hash,
    index: chunkIndex,
    data: fc.uint8Array({ maxLength: 300 }),
    proof: fc.array(hash, { maxLength: 24 }),
  }),
  record({
    v: fc.constant(1 as const),
    type: fc.constant("weights.manifest" as const),
    weightsId: hash,
    chunkSize: fc.oneof(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 16 << 20 })),
    chunkCount: fc.oneof(fc.nat(30), fc.nat(1 << 24)),
    totalSize: uint,
    files: fc.array(
      record({
        name: fc.string({ unit: "binary", minLength: 1, maxLength: 60 }),
        size: uint,
        firstChunk: uint,
        chunkCount: uint,
      }),
      { minLength: 1, maxLength: 4 },
    ),
  }),
  record({
    v: fc.constant(1 as const),
    type: fc.constant("weights.error" as const),
    weightsId: hash,
    reason: blobErrorReason,
  }),
);
const syncRequest: fc.Arbitrary<SyncRequest> = record({
  v: fc.constant(1 as const),
  type: fc.constant("sync.request" as const),
  fromHeight: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  maxBlocks: fc.integer({ min: 1, max: 64 }),
});
const syncResponse: fc.Arbitrary<SyncResponse> = record({
  v: fc.constant(1 as const),
  type: fc.constant("sync.response" as const),
  latestHeight: uint,
  blocks: fc.array(record({ block: blockWith(1), commit }), { maxLength: 2 }),
});

type Case = [name: string, codec: MessageCodec<never>, arbitrary: fc.Arbitrary<unknown>];
const cases: Case[] = [
  ...Object.entries(txPayloads).map(
    ([type, payload]): Case => [`tx ${type}`, txCodec as MessageCodec<never>, signedTxOf(payload)],
  ),
  ["header", headerCodec as MessageCodec<never>, header],
  ["commit", commitCodec as MessageCodec<never>, commit],
  ["block", blockCodec as MessageCodec<never>, block],
  ["consensus message", consensusCodec as MessageCodec<never>, consensusMessage],
  ["blob request", blobRequestCodec as MessageCodec<never>, blobRequest],
  ["blob response", blobResponseCodec as MessageCodec<never>, blobResponse],
  ["weights request", weightsRequestCodec as MessageCodec<never>, weightsRequest],
  ["weights response", weightsResponseCodec as MessageCodec<never>, weightsResponse],
  ["sync request", syncRequestCodec as MessageCodec<never>, syncRequest],
  ["sync response", syncResponseCodec as MessageCodec<never>, syncResponse],
];

/** Headers that declare lengths no input here can back (and must never be allocated). */
const HUGE_HEADERS = [
  "5affffffff",
  "5b0000000100000000",
  "5b001fffffffffffff",
  "5bffffffffffffffff",
  "7affffffff",
  "7bffffffffffffffff",
  "9affffffff",
  "9b0000000100000000",
  "bbffffffffffffffff",
  "baffffffff",
].map((h) => Uint8Array.from(Buffer.from(h, "hex")));

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "truncate"; at: number }
  | { kind: "append"; extra: Uint8Array }
  | { kind: "overwrite"; at: number; patch: Uint8Array }
  | { kind: "huge"; at: number; header: Uint8Array; replace: boolean };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }),
  record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  record({ kind: fc.constant("append" as const), extra: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  record({
    kind: fc.constant("overwrite" as const),
    at: fc.nat(),
    patch: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  record({
    kind: fc.constant("huge" as const),
    at: fc.nat(),
    header: fc.constantFrom(...HUGE_HEADERS),
    replace: fc.boolean(),
  }),
);

function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  const at = "at" in m ? m.at % bytes.length : 0;
  switch (m.kind) {
    case "flip": {
      const out = bytes.slice();
      out[at]! ^= 1 << m.bit;
      return out;
    }
    case "truncate":
      return bytes.subarray(0, at);
    case "append":
      return concat(bytes, m.extra);
    case "overwrite": {
      const out = bytes.slice();
      out.set(m.patch.subarray(0, out.length - at), at);
      return out;
    }
    case "huge": {
      const rest = bytes.subarray(m.replace ? Math.min(bytes.length, at + m.header.length) : at);
      return concat(bytes.subarray(0, at), m.header, rest);
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/** Decoding either fails with a CodecError or accepts bytes that are the canonical encoding. */
function decodeOnlyCanonical<T>(codec: MessageCodec<T>, bytes: Uint8Array): void {
  let value: T;
  try {
    value = codec.decode(bytes);
  } catch (err) {
    if (err instanceof CodecError) return;
    throw err;
  }
  if (!sameBytes(codec.encode(value), bytes)) throw new Error("accepted a non-canonical encoding");
}

describe.each(cases)("%s", (_name, codec, arbitrary) => {
  it("round-trips canonically, and mutated encodings fail only with CodecError", () => {
    fc.assert(
      fc.property(arbitrary, mutation, (value, m) => {
        const bytes = codec.encode(value as never);
        const back = codec.decode(bytes);
        deepStrictEqual(back, value);
        if (!sameBytes(codec.encode(back), bytes)) throw new Error("re-encoding changed the bytes");
        decodeOnlyCanonical(codec, mutate(bytes, m));
      }),
      params,
    );
  });
});

describe("random input", () => {
  it("fails only with CodecError, for every message codec", () => {
    const codecs = cases.map(([, codec]) => codec).filter((c, i, all) => all.indexOf(c) === i);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        for (const codec of codecs) decodeOnlyCanonical(codec, bytes);
      }),
      params,
    );
  });

  it("that starts like a map of text keys fails only with CodecError", () => {
    // Random bytes rarely get past the first head; these reach the schemas.
    const codecs = [
      txCodec,
      blockCodec,
      blobRequestCodec,
      syncRequestCodec,
      weightsRequestCodec,
    ] as MessageCodec<never>[];
    fc.assert(
      fc.property(fc.nat(6), fc.uint8Array({ maxLength: 128 }), (n, rest) => {
        const bytes = Uint8Array.of(0xa0 + n, 0x61, 0x76, 0x01, ...rest);
        for (const codec of codecs) decodeOnlyCanonical(codec, bytes);
      }),
      params,
    );
  });
});

/** Values of the profile's data model. */
const cborValue: fc.Arbitrary<CborValue> = fc
  .letrec<{ value: CborValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.maxSafeInteger(),
      fc.bigInt({ min: -(2n ** 64n), max: -(2n ** 53n) - 1n }),
      fc.bigInt({ min: 2n ** 53n, max: U64_MAX }),
      fc.string({ unit: "binary", maxLength: 30 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(tie("value"), { maxLength: 5 }),
      fc.dictionary(fc.string({ unit: "binary", maxLength: 6 }), tie("value"), {
        maxKeys: 5,
        noNullPrototype: true,
      }),
    ),
  }))
  .value.filter((v) => depth(v) <= MAX_DEPTH);

function depth(v: CborValue): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth));
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    return 1 + Math.max(0, ...Object.values(v).map(depth));
  }
  return 0;
}

/**
 * Any valid CBOR for `value`, chosen by `rng`: heads of any width at least the shortest,
 * indefinite lengths (chunked strings), shuffled map keys, floats and bignums for integers.
 */
function looseEncode(value: CborValue, rng: () => number): number[] {
  const out: number[] = [];
  const head = (major: number, n: bigint) => {
    const min = n < 24n ? 0 : n < 0x100n ? 1 : n < 0x10000n ? 2 : n < 0x100000000n ? 3 : 4;
    const width = min + Math.floor(rng() * (5 - min) * (rng() < 0.7 ? 0 : 1));
    if (width === 0) return out.push((major << 5) | Number(n));
    const size = 1 << (width - 1);
    out.push((major << 5) | (23 + width));
    for (let i = size - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
  };
  const utf8 = (s: string) => [...Buffer.from(s, "utf8")];
  const chunked = (major: number, data: number[]) => {
    if (rng() < 0.9) {
      head(major, BigInt(data.length));
      out.push(...data);
      return;
    }
    out.push((major << 5) | 31);
    const cut = Math.floor(rng() * (data.length + 1));
    for (const part of [data.slice(0, cut), data.slice(cut)]) {
      head(major, BigInt(part.length));
      out.push(...part);
    }
    out.push(0xff);
  };
  const walk = (v: CborValue) => {
    if (v === null) return out.push(0xf6);
    if (v === true) return out.push(0xf5);
    if (v === false) return out.push(0xf4);
    if (typeof v === "number" || typeof v === "bigint") {
      const n = BigInt(v);
      if (rng() < 0.05 && Number.isSafeInteger(Number(n))) {
        const f = Buffer.alloc(9);
        f[0] = 0xfb;
        f.writeDoubleBE(Number(n), 1);
        return out.push(...f);
      }
      if (rng() < 0.05 && n >= 0n) {
        out.push(0xc2);
        const hex = n.toString(16);
        return chunked(2, [...Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex")]);
      }
      return n >= 0n ? head(0, n) : head(1, -1n - n);
    }
    if (typeof v === "string") return chunked(3, utf8(v));
    if (v instanceof Uint8Array) return chunked(2, [...v]);
    const indefinite = rng() < 0.1;
    if (Array.isArray(v)) {
      if (indefinite) out.push(0x9f);
      else head(4, BigInt(v.length));
      for (const item of v) walk(item);
    } else {
      const keys = Object.keys(v);
      if (rng() < 0.3) keys.sort(() => rng() - 0.5);
      if (indefinite) out.push(0xbf);
      else head(5, BigInt(keys.length));
      for (const k of keys) {
        chunked(3, utf8(k));
        walk(v[k]!);
      }
    }
    if (indefinite) out.push(0xff);
  };
  walk(value);
  return out;
}

describe("the profile", () => {
  it("round-trips every value, bigints by value", () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        const bytes = encode(value);
        if (!sameBytes(encode(decode(bytes)), bytes)) throw new Error("re-encoding changed the bytes");
        deepStrictEqual(normalize(decode(bytes)), normalize(value));
      }),
      params,
    );
  });

  it("accepts exactly one byte string per value", () => {
    fc.assert(
      fc.property(cborValue, fc.integer(), (value, seed) => {
        let state = seed >>> 0 || 1;
        const rng = () => {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          return (state >>> 0) / 2 ** 32;
        };
        const loose = Uint8Array.from(looseEncode(value, rng));
        const canonical = encode(value);
        try {
          decode(loose);
        } catch (err) {
          if (err instanceof CodecError) return;
          throw err;
        }
        if (!sameBytes(loose, canonical)) throw new Error("accepted a second encoding of a value");
      }),
      params,
    );
  });
});

/** Integers compare by value: a bigint in the safe range decodes as a number. */
function normalize(v: CborValue): unknown {
  if (typeof v === "number" || typeof v === "bigint") return BigInt(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  }
  return v;
}
