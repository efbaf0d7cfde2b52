import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import {
  EMPTY_MERKLE_ROOT,
  isDeepshardError,
  MerkleBuilder,
  merkleLeafHash,
  merkleNodeHash,
  merkleProof,
  merkleProofFromLeafHashes,
  merkleRoot,
  merkleRootFromLeafHashes,
  merkleRootOfFile,
  merkleRootOfStream,
  sha256,
  sha256Parts,
  verifyMerkleProof,
  verifyMerkleProofForLeafHash,
} from "../src/index.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (s: string) => new TextEncoder().encode(s);

/** RFC 6962 §2.1, written as the recursive definitions in the RFC. */
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return nobleSha256(new Uint8Array(0));
  if (d.length === 1) return nobleSha256(Uint8Array.from([0, ...d[0]!]));
  const k = largestPowerOfTwoBelow(d.length);
  return nobleSha256(Uint8Array.from([1, ...mth(d.slice(0, k)), ...mth(d.slice(k))]));
}
function path(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return [];
  const k = largestPowerOfTwoBelow(d.length);
  return m < k
    ? [...path(m, d.slice(0, k)), mth(d.slice(k))]
    : [...path(m - k, d.slice(k)), mth(d.slice(0, k))];
}

const chunksOf = (n: number) => Array.from({ length: n }, (_, i) => bytes(`chunk ${i}`));

describe("sha256", () => {
  it("matches @noble/hashes on random inputs, whole and in parts", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 5 }), (parts) => {
        const whole = Uint8Array.from(Buffer.concat(parts));
        expect(hex(sha256(whole))).toBe(hex(nobleSha256(whole)));
        expect(hex(sha256Parts(parts))).toBe(hex(nobleSha256(whole)));
      }),
      { numRuns: 200 },
    );
    const big = new Uint8Array(randomBytes(3 << 20));
    expect(hex(sha256(big))).toBe(hex(nobleSha256(big)));
    expect(hex(sha256(big.subarray(7, 1000)))).toBe(hex(nobleSha256(big.subarray(7, 1000))));
  });

  it("returns plain 32-byte Uint8Arrays", () => {
    const h = sha256(bytes("abc"));
    expect(h).toHaveLength(32);
    expect(hex(h)).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});

describe("merkle root", () => {
  it("equals the RFC 6962 definition for 0..70 chunks", () => {
    for (let n = 0; n <= 70; n++) {
      const chunks = chunksOf(n);
      const expected = hex(mth(chunks));
      expect(hex(merkleRoot(chunks))).toBe(expected);
      expect(hex(merkleRootFromLeafHashes(chunks.map(merkleLeafHash)))).toBe(expected);
      const builder = new MerkleBuilder();
      for (const c of chunks) builder.addChunk(c);
      expect(builder.count).toBe(n);
      expect(hex(builder.root())).toBe(expected);
    }
  });

  it("separates leaves from nodes and never duplicates an odd last node", () => {
    expect(hex(merkleRoot([]))).toBe(hex(EMPTY_MERKLE_ROOT));
    expect(hex(EMPTY_MERKLE_ROOT)).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const [a, b, c] = chunksOf(3);
    expect(hex(merkleRoot([a!, b!, c!]))).not.toBe(hex(merkleRoot([a!, b!, c!, c!])));
    // a single leaf whose bytes are two child hashes is not the parent of those children
    const left = merkleLeafHash(a!);
    const right = merkleLeafHash(b!);
    const fake = Uint8Array.from([...left, ...right]);
    expect(hex(merkleRoot([fake]))).not.toBe(hex(merkleNodeHash(left, right)));
    expect(hex(merkleRoot([a!, b!]))).toBe(hex(merkleNodeHash(left, right)));
  });

  it("rejects malformed leaf hashes with a typed error", () => {
    for (const bad of [[new Uint8Array(31)], [new Uint8Array(32), "x" as unknown as Uint8Array]]) {
      try {
        merkleRootFromLeafHashes(bad);
        expect.unreachable();
      } catch (err) {
        expect(isDeepshardError(err, "INVALID_HASH")).toBe(true);
      }
    }
  });
});

describe("merkle proofs", () => {
  it("prove every index for sizes 1..33, and nothing else", () => {
    for (let n = 1; n <= 33; n++) {
      const chunks = chunksOf(n);
      const leafHashes = chunks.map(merkleLeafHash);
      const root = merkleRoot(chunks);
      for (let i = 0; i < n; i++) {
        const proof = merkleProof(chunks, i);
        expect(proof.map(hex)).toEqual(path(i, chunks).map(hex));
        expect(merkleProofFromLeafHashes(leafHashes, i).map(hex)).toEqual(proof.map(hex));
        expect(verifyMerkleProof(root, chunks[i]!, i, n, proof)).toBe(true);
        expect(verifyMerkleProofForLeafHash(root, leafHashes[i]!, i, n, proof)).toBe(true);

        // tampered leaf
        expect(verifyMerkleProof(root, bytes(`chunk ${i}!`), i, n, proof)).toBe(false);
        // every other index
        for (let j = 0; j < n; j++)
          if (j !== i) expect(verifyMerkleProof(root, chunks[i]!, j, n, proof)).toBe(false);
        expect(verifyMerkleProof(root, chunks[i]!, n, n, proof)).toBe(false);
        expect(verifyMerkleProof(root, chunks[i]!, -1, n, proof)).toBe(false);
        // every proof element flipped, dropped, or one added
        for (let k = 0; k < proof.length; k++) {
          const flipped = proof.map((p) => Uint8Array.from(p));
          flipped[k]![k % 32]! ^= 0x10;
          expect(verifyMerkleProof(root, chunks[i]!, i, n, flipped)).toBe(false);
        }
        if (proof.length > 0)
          expect(verifyMerkleProof(root, chunks[i]!, i, n, proof.slice(0, -1))).toBe(false);
        expect(verifyMerkleProof(root, chunks[i]!, i, n, [...proof, root])).toBe(false);
        // another tree's root
        expect(verifyMerkleProof(merkleRoot(chunksOf(n + 1)), chunks[i]!, i, n, proof)).toBe(false);
      }
    }
  });

  it("return false, not an exception, for malformed proofs", () => {
    const chunks = chunksOf(5);
    const root = merkleRoot(chunks);
    const proof = merkleProof(chunks, 2);
    const cases: [Uint8Array, number, number, unknown][] = [
      [root, 2, 5, [...proof.slice(0, 1), new Uint8Array(31)]],
      [root, 2, 5, [...proof, "x"]],
      [root, 2, 5, "not an array"],
      [root, 2, 5, Array.from({ length: 1000 }, () => root)],
      [root, 2.5, 5, proof],
      [root, 2, Number.POSITIVE_INFINITY, proof],
      [root, 2, 0, proof],
      [root.subarray(1), 2, 5, proof],
    ];
    for (const [r, index, count, p] of cases) {
      expect(verifyMerkleProof(r, chunks[2]!, index, count, p as Uint8Array[])).toBe(false);
    }
    expect(verifyMerkleProofForLeafHash(root, new Uint8Array(5), 2, 5, proof)).toBe(false);
  });

  it("refuse to make a proof for a missing leaf, with a typed error", () => {
    expect(() => merkleProof([], 0)).toThrow(expect.objectContaining({ code: "EMPTY_TREE" }));
    expect(() => merkleProof(chunksOf(3), 3)).toThrow(
      expect.objectContaining({ code: "INDEX_OUT_OF_RANGE" }),
    );
    expect(() => merkleProof(chunksOf(3), 0.5)).toThrow(
      expect.objectContaining({ code: "INDEX_OUT_OF_RANGE" }),
    );
  });
});

describe("streaming root", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  async function* pieces(data: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
    let offset = 0;
    for (let i = 0; offset < data.length; i++) {
      const size = Math.max(1, sizes[i % sizes.length]!);
      yield data.subarray(offset, offset + size);
      offset += size;
    }
  }

  function inMemory(data: Uint8Array, chunkSize: number): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    for (let o = 0; o < data.length; o += chunkSize) chunks.push(data.subarray(o, o + chunkSize));
    return chunks;
  }

  it("equals the in-memory root whatever the stream's piece sizes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        async (length, chunkSize, sizes) => {
          const data = new Uint8Array(randomBytes(length));
          const chunks = inMemory(data, chunkSize);
          const result = await merkleRootOfStream(pieces(data, sizes), chunkSize);
          expect(hex(result.root)).toBe(hex(merkleRoot(chunks)));
          expect(result.chunkCount).toBe(chunks.length);
          expect(result.byteLength).toBe(length);
          expect(result.leafHashes.map(hex)).toEqual(chunks.map((c) => hex(merkleLeafHash(c))));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("hashes a file in fixed-size chunks, the last one short", async () => {
    const dir = await mkdtemp(join(tmpdir(), "merkle-"));
    dirs.push(dir);
    const chunkSize = 64 << 10;
    for (const length of [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 5 * chunkSize + 123]) {
      const data = new Uint8Array(randomBytes(length));
      const file = join(dir, `f${length}`);
      await writeFile(file, data);
      const result = await merkleRootOfFile(file, chunkSize);
      expect(hex(result.root)).toBe(hex(merkleRoot(inMemory(data, chunkSize))));
      expect(result.chunkCount).toBe(Math.ceil(length / chunkSize));
    }
    const empty = await merkleRootOfFile(join(dir, "f0"), chunkSize);
    expect(hex(empty.root)).toBe(hex(EMPTY_MERKLE_ROOT));
  });

  it("rejects a bad chunk size and a missing file", async () => {
    await expect(merkleRootOfFile("/nonexistent", 0)).rejects.toMatchObject({ code: "INVALID_CHUNK_SIZE" });
    await expect(merkleRootOfStream(pieces(new Uint8Array(3), [1]), -1)).rejects.toMatchObject({
      code: "INVALID_CHUNK_SIZE",
    });
    await expect(merkleRootOfFile(join(tmpdir(), "no-such-file-merkle"), 1024)).rejects.toMatchObject({
      code: "READ_FAILED",
    });
  });
});
