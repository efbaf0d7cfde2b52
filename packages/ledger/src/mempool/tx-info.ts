/**
 * A transaction's id and encoded size, computed from one encoding and remembered per object: the
 * mempool, the signature cache, a block's tx root and the application all need the hash of the same
 * transaction objects, and re-encoding a transaction costs more than hashing it.
 */
import { encodeTx, type SignedTx, sha256 } from "@deepshard/protocol";

export interface TxInfo {
  hash: Uint8Array;
  /** Lower-case hex of the hash: the key of maps and sets. */
  id: string;
  /** Bytes of the canonical encoding. */
  size: number;
}

const infos = new WeakMap<SignedTx, TxInfo>();

export function txInfo(tx: SignedTx): TxInfo {
  let info = infos.get(tx);
  if (!info) {
    const bytes = encodeTx(tx);
    const hash = sha256(bytes);
    info = { hash, id: Buffer.from(hash).toString("hex"), size: bytes.length };
    infos.set(tx, info);
  }
  return info;
}
