/**
 * SHA-256, the one hash of content ids, Merkle trees and weights ids. Through Node's crypto
 * (OpenSSL with SHA-NI here, ~1.5 GB/s, several times @noble/hashes); the tests check that both agree.
 */
import { createHash, hash } from "node:crypto";

export const HASH_LENGTH = 32;

function toBytes(digest: Buffer<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.length);
}

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return toBytes(hash("sha256", data, "buffer"));
}

/** SHA-256 of the concatenation of `parts`, without concatenating them. */
export function sha256Parts(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const h = createHash("sha256");
  for (const part of parts) h.update(part);
  return toBytes(h.digest());
}
