/**
 * Byte helpers, and the bindings of consensus to the protocol's canonical encodings: signing
 * bytes (domain-separated by type and chain id), the strict ed25519 check, header and commit
 * hashes and the Merkle root of a block's transactions.
 */
import {
  commitHash,
  headerHash,
  keyPairFromSecret,
  merkleRoot,
  type SignedTx,
  sha256,
  sign,
  signingBytes,
  txHash,
  verify,
} from "@deepshard/protocol";
import type { BlockHashing } from "./block.ts";
import type { ConsensusCrypto, ConsensusSigner } from "./types.ts";

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex");
}

export function equalBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** Signing bytes and signature checks of the protocol package. */
export const protocolCrypto: ConsensusCrypto = { signingBytes, verify };

/** A validator key from its 32-byte ed25519 secret seed. */
export function keySigner(secretKey: Uint8Array): ConsensusSigner {
  const pair = keyPairFromSecret(secretKey);
  return { publicKey: pair.publicKey, sign: (message) => sign(pair.secretKey, message) };
}

/** Blocks of the network: signed protocol transactions. */
export const signedTxBlockHashing: BlockHashing<SignedTx> = {
  headerHash,
  commitHash,
  txRoot: (txs) => merkleRoot(txs.map(txHash)),
};

/** Blocks whose transactions are opaque byte strings (simulations, other applications). */
export const bytesBlockHashing: BlockHashing<Uint8Array> = {
  headerHash,
  commitHash,
  txRoot: (txs) => merkleRoot(txs.map(sha256)),
};
