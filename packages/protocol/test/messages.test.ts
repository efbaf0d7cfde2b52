import { isDeepStrictEqual } from "node:util";
import { sha256 } from "@noble/hashes/sha2.js";
import { encode as cborgEncode, Token, Type } from "cborg";
import { describe, expect, it } from "vitest";
import {
  BLOB_CHUNK_MAX,
  type Block,
  blobRequestCodec,
  blobResponseCodec,
  blockCodec,
  blockHash,
  CodecError,
  type CodecErrorCode,
  type Commit,
  commitCodec,
  commitHash,
  commitPrecommit,
  consensusCodec,
  decode,
  decodeTx,
  encode,
  encodeTx,
  type Header,
  headerCodec,
  headerHash,
  MAX_CHUNK_COUNT,
  MAX_COMMIT_SIGNATURES,
  MAX_MANIFEST_FILES,
  MAX_METADATA_BYTES,
  MAX_PROOF_HASHES,
  MAX_REASONS,
  MAX_SEGMENT_WEIGHTS,
  MAX_TRANSFER_CHUNK_BYTES,
  MAX_TX_BYTES,
  MAX_VERDICTS,
  MAX_WEIGHTS_MANIFEST_BYTES,
  MAX_WEIGHTS_REQUEST_BYTES,
  MAX_WEIGHTS_RESPONSE_BYTES,
  type MessageCodec,
  type Prevote,
  SIGNING_DOMAIN,
  type SignedTx,
  type SignedVote,
  signingBytes,
  syncRequestCodec,
  syncResponseCodec,
  TX_MAX_BYTES,
  type TxPayload,
  txCodec,
  txHash,
  U64_MAX,
  type WeightsChunk,
  type WeightsManifest,
  type WeightsResponse,
  weightsProtocol,
  weightsRequestCodec,
  weightsResponseCodec,
} from "../src/index.ts";

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);
const key = (byte: number) => fill(32, byte);
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const chainId = "deepshard-test-1";
const base = { v: 1, chainId, nonce: 7n, fee: 100n } as const;
const envelope = <P>(payload: P) => ({ payload, signer: key(1), signature: fill(64, 2) });

function codecError(fn: () => unknown, code: CodecErrorCode): CodecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).code).toBe(code);
    return err as CodecError;
  }
  throw new Error(`expected a CodecError ${code}, got no error`);
}

const prevote: Prevote = { v: 1, type: "prevote", chainId, height: 5, round: 0, blockHash: key(3) };
const signedVote = (p: Prevote | Omit<Prevote, "type">, signer = 1): SignedVote =>
  ({ payload: { ...p }, signer: key(signer), signature: fill(64, 9) }) as SignedVote;

const txs: Record<TxPayload["type"], TxPayload> = {
  transfer: { ...base, type: "transfer", to: key(4), amount: 5_000n },
  bond: { ...base, type: "bond", amount: 10n ** 12n },
  unbond: { ...base, type: "unbond", amount: 1n },
  "data.submit": {
    ...base,
    type: "data.submit",
    contentHash: key(5),
    size: 123_456,
    stake: 50n,
    metadata: '{"lang":"en","license":"CC-BY-4.0"}',
  },
  "data.vote": {
    ...base,
    type: "data.vote",
    submission: key(6),
    scores: { novelty: 8000, reproducibility: 5000, alignment: 10000, truthfulness: 7000, objectivity: 0 },
    segmentWeights: [
      { offset: 0, length: 100, weight: 10000 },
      { offset: 100, length: 50, weight: 2500 },
    ],
  },
  "training.commit": { ...base, type: "training.commit", round: 3, commitment: key(7) },
  "training.reveal": { ...base, type: "training.reveal", round: 3, weightsId: key(8), salt: key(9) },
  "training.verdict": {
    ...base,
    type: "training.verdict",
    round: 3,
    verdicts: [
      { trainer: key(10), accept: true, reasons: [] },
      { trainer: key(11), accept: false, reasons: ["no_membership_gap", "copy"] },
    ],
  },
  "weights.buy": { ...base, type: "weights.buy", weightsId: key(8), maxPrice: U64_MAX },
  evidence: {
    ...base,
    type: "evidence",
    voteA: signedVote(prevote),
    voteB: signedVote({ ...prevote, blockHash: null }),
  },
};

const header: Header = {
  v: 1,
  chainId,
  height: 2,
  time: 1_750_000_000_000,
  prevHash: key(12),
  txRoot: key(13),
  appHash: key(14),
  proposer: key(1),
  lastCommitHash: key(15),
};
const commit: Commit = {
  v: 1,
  height: 1,
  round: 0,
  blockHash: key(12),
  signatures: [
    { validator: key(1), signature: fill(64, 1) },
    { validator: key(2), signature: fill(64, 2) },
  ],
};
const block: Block = { v: 1, header, txs: Object.values(txs).map(envelope), lastCommit: commit };

/** One example of every message, with the codec that carries it. */
const examples: [string, MessageCodec<never>, unknown][] = [
  ...Object.entries(txs).map(([type, p]): [string, MessageCodec<never>, unknown] => [
    `tx ${type}`,
    txCodec as MessageCodec<never>,
    envelope(p),
  ]),
  ["header", headerCodec as MessageCodec<never>, header],
  ["commit", commitCodec as MessageCodec<never>, commit],
  ["block", blockCodec as MessageCodec<never>, block],
  ["genesis block", blockCodec as MessageCodec<never>, { ...block, txs: [], lastCommit: null }],
  [
    "proposal message",
    consensusCodec as MessageCodec<never>,
    {
      v: 1,
      type: "proposal",
      proposal: envelope({
        v: 1,
        type: "proposal",
        chainId,
        height: 2,
        round: 1,
        polRound: -1,
        blockHash: key(3),
      }),
      block,
    },
  ],
  [
    "vote message",
    consensusCodec as MessageCodec<never>,
    { v: 1, type: "vote", vote: signedVote({ ...prevote, type: "precommit" } as unknown as Prevote) },
  ],
  [
    "blob request",
    blobRequestCodec as MessageCodec<never>,
    { v: 1, type: "blob.request", hash: key(8), offset: 1 << 20, length: 1 << 20 },
  ],
  [
    "blob chunk",
    blobResponseCodec as MessageCodec<never>,
    { v: 1, type: "blob.chunk", hash: key(8), offset: 0, totalSize: 3, data: Uint8Array.of(1, 2, 3) },
  ],
  [
    "blob error",
    blobResponseCodec as MessageCodec<never>,
    { v: 1, type: "blob.error", hash: key(8), reason: "no_license" },
  ],
  [
    "weights chunk request",
    weightsRequestCodec as MessageCodec<never>,
    { v: 1, type: "weights.chunk.request", weightsId: key(8), index: 7 },
  ],
  [
    "weights manifest request",
    weightsRequestCodec as MessageCodec<never>,
    { v: 1, type: "weights.manifest.request", weightsId: key(8) },
  ],
  [
    "weights chunk",
    weightsResponseCodec as MessageCodec<never>,
    {
      v: 1,
      type: "weights.chunk",
      weightsId: key(8),
      index: 2,
      data: Uint8Array.of(1, 2, 3),
      proof: [key(3), key(4)],
    },
  ],
  [
    "weights manifest",
    weightsResponseCodec as MessageCodec<never>,
    {
      v: 1,
      type: "weights.manifest",
      weightsId: key(8),
      chunkSize: 1 << 20,
      chunkCount: 3,
      totalSize: 2_500_000,
      files: [
        { name: "config.json", size: 400, firstChunk: 0, chunkCount: 1 },
        { name: "model.safetensors", size: 2_499_600, firstChunk: 1, chunkCount: 2 },
      ],
    },
  ],
  [
    "weights error",
    weightsResponseCodec as MessageCodec<never>,
    { v: 1, type: "weights.error", weightsId: key(8), reason: "busy" },
  ],
  [
    "sync request",
    syncRequestCodec as MessageCodec<never>,
    { v: 1, type: "sync.request", fromHeight: 1, maxBlocks: 64 },
  ],
  [
    "sync response",
    syncResponseCodec as MessageCodec<never>,
    { v: 1, type: "sync.response", latestHeight: 9, blocks: [{ block, commit: { ...commit, height: 2 } }] },
  ],
];

describe("every message", () => {
  for (const [name, codec, value] of examples) {
    it(`${name}: decode(encode(x)) = x, and the bytes are canonical`, () => {
      const bytes = codec.encode(value as never);
      const back = codec.decode(bytes);
      expect(back).toEqual(value);
      expect(codec.encode(back)).toEqual(bytes);
      expect(encode(decode(bytes, { maxBytes: codec.maxBytes }))).toEqual(bytes);
      expect(bytes.length).toBeLessThanOrEqual(codec.maxBytes);
    });

    it(`${name}: an unknown key, a newer version and trailing bytes are rejected`, () => {
      const raw = decode(codec.encode(value as never), { maxBytes: codec.maxBytes }) as Record<
        string,
        unknown
      >;
      codecError(() => codec.decode(encode({ ...raw, zzz: 1 })), "UNKNOWN_KEY");
      if ("v" in raw) codecError(() => codec.decode(encode({ ...raw, v: 2 })), "UNSUPPORTED_VERSION");
      const bytes = codec.encode(value as never);
      codecError(() => codec.decode(Uint8Array.of(...bytes, 0)), "TRAILING_BYTES");
    });
  }
});

describe("transactions", () => {
  const transfer = envelope(txs.transfer) as SignedTx;

  it("have a stable encoding (golden vector)", () => {
    const t: SignedTx = {
      payload: { v: 1, type: "transfer", chainId: "devnet", nonce: 1n, fee: 10n, to: key(7), amount: 5n },
      signer: key(7),
      signature: fill(64, 0),
    };
    // {"signer": h'07…', "payload": {"v": 1, "to": h'07…', "fee": 10, "type": "transfer", "nonce": 1,
    //  "amount": 5, "chainId": "devnet"}, "signature": h'00…'}: keys sorted by their encoded bytes
    expect(toHex(encodeTx(t))).toBe(
      [
        "a3",
        `667369676e6572 5820${"07".repeat(32)}`,
        "677061796c6f6164 a7",
        "6176 01",
        `62746f 5820${"07".repeat(32)}`,
        "63666565 0a",
        "6474797065 687472616e73666572",
        "656e6f6e6365 01",
        "66616d6f756e74 05",
        "67636861696e4964 666465766e6574",
        `697369676e6174757265 5840${"00".repeat(64)}`,
      ]
        .join("")
        .replaceAll(" ", ""),
    );
    expect(toHex(txHash(t))).toBe("4333bcfa787f5fb326ac9a726861788b833c254a6a6399534f6ce3aa638e3a3d");
  });

  it("are identified by the sha256 of their canonical bytes", () => {
    expect(txHash(transfer)).toEqual(sha256(encodeTx(transfer)));
    expect(decodeTx(encodeTx(transfer))).toEqual(transfer);
  });

  it("name the path of a bad field", () => {
    const bad = { ...transfer, payload: { ...txs.transfer, amount: U64_MAX + 1n } } as SignedTx;
    expect(codecError(() => encodeTx(bad), "OUT_OF_RANGE").path).toBe("tx.payload.amount");
    const negative = encode({ ...transfer, payload: { ...txs.transfer, amount: -1 } });
    expect(codecError(() => decodeTx(negative), "OUT_OF_RANGE").path).toBe("tx.payload.amount");
  });

  it("reject an unknown type, a float nonce and a missing chain id", () => {
    const unknown = encode({ ...transfer, payload: { ...txs.transfer, type: "mint" } });
    expect(codecError(() => decodeTx(unknown), "UNKNOWN_TYPE").path).toBe("tx.payload.type");
    const floats = cborgEncode(
      { ...transfer, payload: { ...txs.transfer, nonce: 7 } },
      { typeEncoders: { number: (n: number) => (n === 7 ? [new Token(Type.float, 7)] : null) } },
    );
    codecError(() => decodeTx(floats), "WRONG_TYPE");
    const { chainId: _, ...noChain } = txs.transfer;
    expect(codecError(() => decodeTx(encode({ ...transfer, payload: noChain })), "MISSING_KEY").path).toBe(
      "tx.payload",
    );
  });

  it("reject bad keys and signatures", () => {
    codecError(() => encodeTx({ ...transfer, signer: key(1).subarray(1) }), "OUT_OF_RANGE");
    codecError(() => encodeTx({ ...transfer, signature: fill(65, 0) }), "TOO_LARGE");
    codecError(
      () => encodeTx({ ...transfer, payload: { ...txs.transfer, chainId: "Main Net" } }),
      "WRONG_TYPE",
    );
  });

  it("refuse inputs above MAX_TX_BYTES before decoding", () => {
    const err = codecError(() => decodeTx(new Uint8Array(MAX_TX_BYTES + 1)), "TOO_LARGE");
    expect(err.meta).toMatchObject({ size: MAX_TX_BYTES + 1 });
  });

  it("score in basis points, segments ascending and disjoint", () => {
    const vote = txs["data.vote"] as Extract<TxPayload, { type: "data.vote" }>;
    const withScores = (novelty: number) =>
      envelope({ ...vote, scores: { ...vote.scores, novelty } }) as SignedTx;
    codecError(() => encodeTx(withScores(10_001)), "OUT_OF_RANGE");
    const overlap = [
      { offset: 0, length: 100, weight: 1 },
      { offset: 99, length: 1, weight: 1 },
    ];
    const err = codecError(
      () => encodeTx(envelope({ ...vote, segmentWeights: overlap }) as SignedTx),
      "OUT_OF_RANGE",
    );
    expect(err.path).toBe("tx.payload.segmentWeights[1].offset");
    codecError(
      () =>
        encodeTx(envelope({ ...vote, segmentWeights: [{ offset: 0, length: 0, weight: 1 }] }) as SignedTx),
      "OUT_OF_RANGE",
    );
  });

  it("list verdicts once per trainer, sorted", () => {
    const verdict = txs["training.verdict"] as Extract<TxPayload, { type: "training.verdict" }>;
    const [a, b] = verdict.verdicts;
    const unsorted = envelope({ ...verdict, verdicts: [b!, a!] }) as SignedTx;
    expect(codecError(() => encodeTx(unsorted), "NON_CANONICAL").path).toBe("tx.payload.verdicts[1]");
    codecError(() => encodeTx(envelope({ ...verdict, verdicts: [a!, a!] }) as SignedTx), "NON_CANONICAL");
    const badReason = { ...b!, reasons: ["Not Good"] };
    codecError(() => encodeTx(envelope({ ...verdict, verdicts: [a!, badReason] }) as SignedTx), "WRONG_TYPE");
  });

  describe("size limits bound the largest valid transaction of each type", () => {
    const big = { v: 1, chainId: "z".repeat(64), nonce: U64_MAX, fee: U64_MAX } as const;
    const bigVote = {
      payload: {
        v: 1,
        type: "precommit",
        chainId: big.chainId,
        height: 2 ** 53 - 1,
        round: 2 ** 53 - 1,
        blockHash: key(1),
      },
      signer: key(1),
      signature: fill(64, 1),
    } as SignedVote;
    const largest: Record<TxPayload["type"], TxPayload> = {
      transfer: { ...big, type: "transfer", to: key(1), amount: U64_MAX },
      bond: { ...big, type: "bond", amount: U64_MAX },
      unbond: { ...big, type: "unbond", amount: U64_MAX },
      "data.submit": {
        ...big,
        type: "data.submit",
        contentHash: key(1),
        size: 2 ** 53 - 1,
        stake: U64_MAX,
        metadata: "\u{1f600}".repeat(MAX_METADATA_BYTES / 4),
      },
      "data.vote": {
        ...big,
        type: "data.vote",
        submission: key(1),
        scores: {
          novelty: 10000,
          reproducibility: 10000,
          alignment: 10000,
          truthfulness: 10000,
          objectivity: 10000,
        },
        segmentWeights: Array.from({ length: MAX_SEGMENT_WEIGHTS }, (_, i) => ({
          offset: 2 ** 40 * i,
          length: 2 ** 40,
          weight: 10000,
        })),
      },
      "training.commit": { ...big, type: "training.commit", round: 2 ** 53 - 1, commitment: key(1) },
      "training.reveal": {
        ...big,
        type: "training.reveal",
        round: 2 ** 53 - 1,
        weightsId: key(1),
        salt: key(1),
      },
      "training.verdict": {
        ...big,
        type: "training.verdict",
        round: 2 ** 53 - 1,
        verdicts: Array.from({ length: MAX_VERDICTS }, (_, i) => ({
          trainer: key(i),
          accept: false,
          reasons: Array.from({ length: MAX_REASONS }, () => "r".repeat(32)),
        })),
      },
      "weights.buy": { ...big, type: "weights.buy", weightsId: key(1), maxPrice: U64_MAX },
      evidence: { ...big, type: "evidence", voteA: bigVote, voteB: bigVote },
    };
    for (const [type, payload] of Object.entries(largest)) {
      it(type, () => {
        const bytes = encodeTx(envelope(payload) as SignedTx);
        expect(bytes.length).toBeLessThanOrEqual(TX_MAX_BYTES[type as TxPayload["type"]]);
        expect(decodeTx(bytes).payload).toEqual(payload);
      });
    }

    it("a commit with every allowed signature", () => {
      const full: Commit = {
        ...commit,
        height: 2 ** 53 - 1,
        round: 2 ** 53 - 1,
        signatures: Array.from({ length: MAX_COMMIT_SIGNATURES }, (_, i) => ({
          validator: Uint8Array.of(i >> 8, i & 255, ...fill(30, 255)),
          signature: fill(64, 1),
        })),
      };
      expect(commitCodec.decode(commitCodec.encode(full))).toEqual(full);
    });
  });
});

describe("signing bytes", () => {
  const ascii = (b: Uint8Array) => Buffer.from(b).toString("latin1");

  it("are the domain prefix and type, then the canonical payload", () => {
    const bytes = signingBytes(txs.transfer);
    const prefix = `${SIGNING_DOMAIN}transfer`;
    expect(ascii(bytes.subarray(0, prefix.length))).toBe("deepshard/v1/transfer");
    expect(bytes.subarray(prefix.length)).toEqual(encode(txs.transfer));
    expect(bytes[prefix.length]! & 0xe0).toBe(0xa0); // a CBOR map: not ASCII, ends the prefix
  });

  it("separate types and chains", () => {
    const precommit = { ...prevote, type: "precommit" } as const;
    const a = signingBytes(prevote);
    const b = signingBytes(precommit);
    expect(ascii(b).startsWith("deepshard/v1/precommit")).toBe(true);
    expect(a).not.toEqual(b);
    expect(signingBytes({ ...prevote, chainId: "other" })).not.toEqual(a);
  });

  it("exist for every transaction and consensus payload", () => {
    for (const payload of Object.values(txs)) {
      expect(ascii(signingBytes(payload))).toContain(`deepshard/v1/${payload.type}`);
    }
    const proposal = {
      v: 1,
      type: "proposal",
      chainId,
      height: 1,
      round: 0,
      polRound: 0,
      blockHash: key(1),
    } as const;
    expect(ascii(signingBytes(proposal)).startsWith("deepshard/v1/proposal")).toBe(true);
  });

  it("refuse invalid or unsigned payloads", () => {
    codecError(() => signingBytes({ ...txs.transfer, fee: -1n } as TxPayload), "OUT_OF_RANGE");
    codecError(() => signingBytes({ ...header, type: "header" } as unknown as TxPayload), "UNKNOWN_TYPE");
    codecError(() => signingBytes({ ...txs.bond, v: 2 } as unknown as TxPayload), "UNSUPPORTED_VERSION");
  });

  it("of a commit's signatures are those of its precommit", () => {
    const p = commitPrecommit(chainId, commit);
    expect(p).toEqual({ v: 1, type: "precommit", chainId, height: 1, round: 0, blockHash: key(12) });
    expect(signingBytes(p).length).toBeGreaterThan(0);
  });
});

describe("blocks and commits", () => {
  it("are identified by the hash of the header", () => {
    expect(blockHash(block)).toEqual(headerHash(header));
    expect(headerHash(header)).toEqual(sha256(headerCodec.encode(header)));
    expect(commitHash(commit)).toEqual(sha256(commitCodec.encode(commit)));
  });

  it("list commit signatures once per validator, sorted", () => {
    const [a, b] = commit.signatures;
    codecError(() => commitCodec.encode({ ...commit, signatures: [b!, a!] }), "NON_CANONICAL");
    codecError(() => commitCodec.encode({ ...commit, signatures: [a!, a!] }), "NON_CANONICAL");
  });

  it("start at height 1 and take integer milliseconds", () => {
    expect(codecError(() => headerCodec.encode({ ...header, height: 0 }), "OUT_OF_RANGE").path).toBe(
      "header.height",
    );
    codecError(() => headerCodec.encode({ ...header, time: 1.5 }), "WRONG_TYPE");
  });

  it("carry valid transactions only", () => {
    const bad = { ...block, txs: [envelope({ ...txs.bond, amount: -1n })] } as unknown as Block;
    expect(codecError(() => blockCodec.encode(bad), "OUT_OF_RANGE").path).toBe("block.txs[0].payload.amount");
  });
});

describe("blob and sync messages", () => {
  it("carry at most BLOB_CHUNK_MAX bytes", () => {
    const chunk = { v: 1, type: "blob.chunk", hash: key(1), offset: 0, totalSize: 0 } as const;
    const full = blobResponseCodec.encode({ ...chunk, data: new Uint8Array(BLOB_CHUNK_MAX) });
    expect(blobResponseCodec.decode(full)).toMatchObject({ type: "blob.chunk" });
    const over = { ...chunk, data: new Uint8Array(BLOB_CHUNK_MAX + 1) };
    expect(codecError(() => blobResponseCodec.encode(over), "TOO_LARGE").path).toBe("blobResponse.data");
    codecError(() => blobResponseCodec.decode(encode(over)), "TOO_LARGE");
    const request = { v: 1, type: "blob.request", hash: key(1), offset: 0 } as const;
    codecError(() => blobRequestCodec.encode({ ...request, length: BLOB_CHUNK_MAX + 1 }), "OUT_OF_RANGE");
    codecError(() => blobRequestCodec.encode({ ...request, length: 0 }), "OUT_OF_RANGE");
  });

  it("reject a kind (blobs are data by hash), unknown reasons and oversized sync requests", () => {
    const request = { v: 1, type: "blob.request", kind: "data", hash: key(1), offset: 0, length: 1 };
    codecError(() => blobRequestCodec.decode(encode(request)), "UNKNOWN_KEY");
    codecError(
      () => blobResponseCodec.decode(encode({ v: 1, type: "blob.error", hash: key(1), reason: "nope" })),
      "WRONG_TYPE",
    );
    codecError(
      () => blobResponseCodec.decode(encode({ v: 1, type: "blob.data", hash: key(1) })),
      "UNKNOWN_TYPE",
    );
    const sync = { v: 1, type: "sync.request", fromHeight: 1, maxBlocks: 65 };
    expect(codecError(() => syncRequestCodec.decode(encode(sync)), "OUT_OF_RANGE").path).toBe(
      "syncRequest.maxBlocks",
    );
  });
});

describe("weights messages", () => {
  const chunk: Omit<WeightsChunk, "data"> = {
    v: 1,
    type: "weights.chunk",
    weightsId: key(1),
    index: 0,
    proof: [],
  };

  it("name their protocols per chain", () => {
    expect(weightsProtocol("devnet")).toBe("/deepshard/devnet/weights/1");
  });

  describe("size limits bound the largest valid message of each type", () => {
    const fullChunk: WeightsResponse = {
      ...chunk,
      index: MAX_CHUNK_COUNT - 1,
      data: new Uint8Array(MAX_TRANSFER_CHUNK_BYTES),
      proof: Array.from({ length: MAX_PROOF_HASHES }, (_, i) => key(i)),
    };
    const fullManifest: WeightsResponse = {
      v: 1,
      type: "weights.manifest",
      weightsId: key(1),
      chunkSize: MAX_TRANSFER_CHUNK_BYTES,
      chunkCount: MAX_CHUNK_COUNT,
      totalSize: 2 ** 53 - 1,
      files: Array.from({ length: MAX_MANIFEST_FILES }, () => ({
        name: `${"\u{1f600}".repeat(63)}abc`, // 255 UTF-8 bytes
        size: 2 ** 53 - 1,
        firstChunk: 2 ** 53 - 1,
        chunkCount: 2 ** 53 - 1,
      })),
    };
    const cases: [string, MessageCodec<never>, unknown, number][] = [
      [
        "chunk request",
        weightsRequestCodec as MessageCodec<never>,
        { v: 1, type: "weights.chunk.request", weightsId: key(1), index: MAX_CHUNK_COUNT - 1 },
        MAX_WEIGHTS_REQUEST_BYTES,
      ],
      [
        "manifest request",
        weightsRequestCodec as MessageCodec<never>,
        { v: 1, type: "weights.manifest.request", weightsId: key(1) },
        MAX_WEIGHTS_REQUEST_BYTES,
      ],
      ["chunk", weightsResponseCodec as MessageCodec<never>, fullChunk, MAX_WEIGHTS_RESPONSE_BYTES],
      ["manifest", weightsResponseCodec as MessageCodec<never>, fullManifest, MAX_WEIGHTS_MANIFEST_BYTES],
      [
        "error",
        weightsResponseCodec as MessageCodec<never>,
        { v: 1, type: "weights.error", weightsId: key(1), reason: "no_license" },
        MAX_WEIGHTS_RESPONSE_BYTES,
      ],
    ];
    for (const [name, codec, value, limit] of cases) {
      it(name, () => {
        const bytes = codec.encode(value as never);
        expect(bytes.length).toBeLessThanOrEqual(limit);
        // Not toEqual: it walks a 16 MiB array element by element and runs out of memory.
        expect(isDeepStrictEqual(codec.decode(bytes), value)).toBe(true);
      });
    }
  });

  it("refuse an index, chunk size, proof or file list beyond its limit", () => {
    const request = {
      v: 1,
      type: "weights.chunk.request",
      weightsId: key(1),
      index: MAX_CHUNK_COUNT,
    } as const;
    expect(codecError(() => weightsRequestCodec.encode(request), "OUT_OF_RANGE").path).toBe(
      "weightsRequest.index",
    );
    const data = new Uint8Array(MAX_TRANSFER_CHUNK_BYTES + 1);
    codecError(() => weightsResponseCodec.encode({ ...chunk, data }), "TOO_LARGE");
    const proof = Array.from({ length: MAX_PROOF_HASHES + 1 }, () => key(2));
    codecError(() => weightsResponseCodec.encode({ ...chunk, data: new Uint8Array(1), proof }), "TOO_LARGE");
    codecError(
      () => weightsResponseCodec.decode(new Uint8Array(weightsResponseCodec.maxBytes + 1)),
      "TOO_LARGE",
    );
    const manifest: WeightsManifest = {
      v: 1,
      type: "weights.manifest",
      weightsId: key(1),
      chunkSize: 1,
      chunkCount: 0,
      totalSize: 0,
      files: [],
    };
    codecError(() => weightsResponseCodec.encode(manifest), "OUT_OF_RANGE");
    const file = { name: "a", size: 0, firstChunk: 0, chunkCount: 0 };
    codecError(
      () => weightsResponseCodec.encode({ ...manifest, files: [file], chunkSize: 0 }),
      "OUT_OF_RANGE",
    );
    codecError(
      () => weightsResponseCodec.encode({ ...manifest, files: [{ ...file, name: "n".repeat(256) }] }),
      "TOO_LARGE",
    );
  });
});
