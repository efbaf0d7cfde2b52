/**
 * A transaction's canonical bytes, id and size, computed once and remembered per object: the
 * mempool, the signature cache, a block's tx root, the application, gossip and the store all need
 * them for the same transaction objects, and encoding a transaction costs far more than hashing it.
 * A transaction decoded from bytes keeps those bytes: the codec accepts only canonical encodings,
 * so they are the ones encoding would produce.
 */
import { decodeTx, encodeTx, type SignedTx, sha256 } from "@deepshard/protocol";
import { readTransfer } from "./transfer-bytes.ts";

export interface TxInfo {
  /** The canonical encoding. */
  bytes: Uint8Array;
  hash: Uint8Array;
  /** Lower-case hex of the hash: the key of maps and sets. */
  id: string;
  size: number;
}

const infos = new WeakMap<SignedTx, TxInfo>();

function infoOf(bytes: Uint8Array): TxInfo {
  const hash = sha256(bytes);
  return { bytes, hash, id: Buffer.from(hash).toString("hex"), size: bytes.length };
}

export function txInfo(tx: SignedTx): TxInfo {
  let info = infos.get(tx);
  if (!info) {
    info = infoOf(encodeTx(tx));
    infos.set(tx, info);
  }
  return info;
}

/**
 * The transaction of canonical `bytes`: the one `known` returns for their id (no decoding), or a
 * decoded one that keeps the bytes. A CodecError when the bytes are not a canonical transaction.
 */
export function txFromBytes(bytes: Uint8Array, known?: (id: string) => SignedTx | undefined): SignedTx {
  const info = infoOf(bytes);
  const found = known?.(info.id);
  if (found) return found;
  const tx = readTransfer(bytes) ?? decodeTx(bytes);
  infos.set(tx, info);
  return tx;
}
