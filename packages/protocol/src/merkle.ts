/**
 * Merkle trees over chunk lists (data batches, weights ids), exactly RFC 6962 §2.1 / RFC 9162 §2.1:
 *
 *   leaf = SHA-256(0x00 ‖ chunk),  node = SHA-256(0x01 ‖ left ‖ right)
 *   MTH([]) = SHA-256(""),  MTH([d]) = leaf(d),
 *   MTH(D[0:n]) = node(MTH(D[0:k]), MTH(D[k:n])) with k the largest power of two < n.
 *
 * An odd count is handled by that split, not by duplicating the last node (which would give two
 * lists the same root, as in Bitcoin's CVE-2012-2459): level by level, a node without a sibling is
 * carried up unchanged. The 0x00/0x01 prefixes keep a leaf from passing for an inner node.
 *
 * A proof is the RFC 6962 audit path: sibling hashes from the leaf upwards, with no entry for
 * levels where the node was carried up. Note that a root does not commit to the count by itself:
 * whoever publishes a root publishes the chunk count beside it.
 */

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { DeepshardError } from "./errors.ts";
import { HASH_LENGTH, sha256 } from "./hash.ts";

export type MerkleErrorCode =
  | "EMPTY_TREE"
  | "INDEX_OUT_OF_RANGE"
  | "INVALID_HASH"
  | "INVALID_CHUNK_SIZE"
  | "READ_FAILED";

export class MerkleError extends DeepshardError<MerkleErrorCode> {
  override name = "MerkleError";
}

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** The root of a tree with no leaves: SHA-256 of the empty string. */
export const EMPTY_MERKLE_ROOT: Uint8Array = sha256(new Uint8Array(0));

function digest(h: Hash): Uint8Array<ArrayBuffer> {
  const d = h.digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.length);
}

/** SHA-256(0x00 ‖ chunk). */
export function merkleLeafHash(chunk: Uint8Array): Uint8Array<ArrayBuffer> {
  return digest(createHash("sha256").update(LEAF_PREFIX).update(chunk));
}

/** SHA-256(0x01 ‖ left ‖ right). */
export function merkleNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array<ArrayBuffer> {
  return digest(createHash("sha256").update(NODE_PREFIX).update(left).update(right));
}

function checkHashes(hashes: readonly Uint8Array[]): void {
  for (let i = 0; i < hashes.length; i++) {
    const h = hashes[i];
    if (!(h instanceof Uint8Array) || h.length !== HASH_LENGTH) {
      throw new MerkleError("INVALID_HASH", `leaf hash ${i} is not ${HASH_LENGTH} bytes`, {
        meta: { index: i },
      });
    }
  }
}

function nextLevel(level: readonly Uint8Array[]): Uint8Array[] {
  const up: Uint8Array[] = [];
  for (let i = 0; i < level.length; i += 2)
    up.push(i + 1 < level.length ? merkleNodeHash(level[i]!, level[i + 1]!) : level[i]!);
  return up;
}

/** The root over already-hashed leaves (see `merkleLeafHash`). */
export function merkleRootFromLeafHashes(leafHashes: readonly Uint8Array[]): Uint8Array {
  checkHashes(leafHashes);
  if (leafHashes.length === 0) return EMPTY_MERKLE_ROOT;
  let level: readonly Uint8Array[] = leafHashes;
  while (level.length > 1) level = nextLevel(level);
  return level[0]!;
}

/** The root over a list of chunks. */
export function merkleRoot(chunks: readonly Uint8Array[]): Uint8Array {
  return merkleRootFromLeafHashes(chunks.map(merkleLeafHash));
}

/** The audit path of leaf `index` over already-hashed leaves. */
export function merkleProofFromLeafHashes(leafHashes: readonly Uint8Array[], index: number): Uint8Array[] {
  checkHashes(leafHashes);
  if (leafHashes.length === 0) throw new MerkleError("EMPTY_TREE", "a tree with no leaves has no proofs");
  if (!Number.isSafeInteger(index) || index < 0 || index >= leafHashes.length) {
    throw new MerkleError(
      "INDEX_OUT_OF_RANGE",
      `leaf index ${index} is outside 0..${leafHashes.length - 1}`,
      {
        meta: { index, count: leafHashes.length },
      },
    );
  }
  const proof: Uint8Array[] = [];
  let level: readonly Uint8Array[] = leafHashes;
  let i = index;
  while (level.length > 1) {
    const sibling = i ^ 1;
    if (sibling < level.length) proof.push(level[sibling]!);
    level = nextLevel(level);
    i >>= 1;
  }
  return proof;
}

/** The audit path of chunk `index`. */
export function merkleProof(chunks: readonly Uint8Array[], index: number): Uint8Array[] {
  return merkleProofFromLeafHashes(chunks.map(merkleLeafHash), index);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether `proof` shows that `leafHash` is leaf `index` of a `count`-leaf tree with this root
 * (RFC 9162 §2.1.3.2). Malformed input of any kind gives false, never an exception.
 */
export function verifyMerkleProofForLeafHash(
  root: Uint8Array,
  leafHash: Uint8Array,
  index: number,
  count: number,
  proof: readonly Uint8Array[],
): boolean {
  if (!(root instanceof Uint8Array) || root.length !== HASH_LENGTH) return false;
  if (!(leafHash instanceof Uint8Array) || leafHash.length !== HASH_LENGTH) return false;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || index < 0 || index >= count)
    return false;
  // A path is at most one hash per level of a 2^53-leaf tree.
  if (!Array.isArray(proof) || proof.length > 53) return false;
  let fn = index;
  let sn = count - 1;
  let r = leafHash;
  for (const p of proof) {
    if (!(p instanceof Uint8Array) || p.length !== HASH_LENGTH || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = merkleNodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = merkleNodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** Whether `proof` shows that `chunk` is chunk `index` of a `count`-chunk tree with this root. */
export function verifyMerkleProof(
  root: Uint8Array,
  chunk: Uint8Array,
  index: number,
  count: number,
  proof: readonly Uint8Array[],
): boolean {
  if (!(chunk instanceof Uint8Array)) return false;
  return verifyMerkleProofForLeafHash(root, merkleLeafHash(chunk), index, count, proof);
}

/**
 * Builds a root leaf by leaf in O(log n) memory: a stack of the perfect subtrees so far (one per
 * set bit of the count), folded right to left at the end, which is exactly the RFC 6962 split.
 */
export class MerkleBuilder {
  #stack: { hash: Uint8Array; size: number }[] = [];
  #count = 0;

  get count(): number {
    return this.#count;
  }

  addLeafHash(leafHash: Uint8Array): void {
    checkHashes([leafHash]);
    let hash = leafHash;
    let size = 1;
    while (this.#stack.length > 0 && this.#stack[this.#stack.length - 1]!.size === size) {
      hash = merkleNodeHash(this.#stack.pop()!.hash, hash);
      size *= 2;
    }
    this.#stack.push({ hash, size });
    this.#count++;
  }

  addChunk(chunk: Uint8Array): void {
    this.addLeafHash(merkleLeafHash(chunk));
  }

  root(): Uint8Array {
    if (this.#stack.length === 0) return EMPTY_MERKLE_ROOT;
    let acc = this.#stack[this.#stack.length - 1]!.hash;
    for (let i = this.#stack.length - 2; i >= 0; i--) acc = merkleNodeHash(this.#stack[i]!.hash, acc);
    return acc;
  }
}

export interface ChunkedRoot {
  root: Uint8Array;
  /** Number of chunks: ceil(byteLength / chunkSize); the last one may be short. */
  chunkCount: number;
  byteLength: number;
  /** One per chunk, to serve proofs later (32 bytes per chunk). */
  leafHashes: Uint8Array[];
}

function checkChunkSize(chunkSize: number): void {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
    throw new MerkleError("INVALID_CHUNK_SIZE", `chunk size must be a positive integer, got ${chunkSize}`);
  }
}

/**
 * The root of a byte stream cut into `chunkSize`-byte chunks (the last one possibly shorter),
 * hashing as the bytes arrive: memory stays at one stream piece, whatever the total size.
 * An empty stream has no chunks and the root `EMPTY_MERKLE_ROOT`.
 */
export async function merkleRootOfStream(
  source: AsyncIterable<Uint8Array>,
  chunkSize: number,
): Promise<ChunkedRoot> {
  checkChunkSize(chunkSize);
  const builder = new MerkleBuilder();
  const leafHashes: Uint8Array[] = [];
  let current: Hash | undefined;
  let filled = 0;
  let byteLength = 0;
  const finishChunk = () => {
    const leaf = digest(current!);
    leafHashes.push(leaf);
    builder.addLeafHash(leaf);
    current = undefined;
    filled = 0;
  };
  for await (const piece of source) {
    byteLength += piece.length;
    let offset = 0;
    while (offset < piece.length) {
      current ??= createHash("sha256").update(LEAF_PREFIX);
      const take = Math.min(chunkSize - filled, piece.length - offset);
      current.update(piece.subarray(offset, offset + take));
      filled += take;
      offset += take;
      if (filled === chunkSize) finishChunk();
    }
  }
  if (current) finishChunk();
  return { root: builder.root(), chunkCount: builder.count, byteLength, leafHashes };
}

/** `merkleRootOfStream` over a file, read in pieces of at most 4 MiB. */
export async function merkleRootOfFile(path: string, chunkSize: number): Promise<ChunkedRoot> {
  checkChunkSize(chunkSize);
  try {
    return await merkleRootOfStream(
      createReadStream(path, { highWaterMark: Math.min(chunkSize, 4 << 20) }),
      chunkSize,
    );
  } catch (err) {
    if (err instanceof MerkleError) throw err;
    throw new MerkleError("READ_FAILED", `cannot read ${path}`, { cause: err, meta: { path } });
  }
}
