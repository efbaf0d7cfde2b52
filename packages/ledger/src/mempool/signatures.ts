/**
 * Each transaction signature is verified once per node: the gossip validator, the mempool and the
 * application all ask this cache, keyed by tx hash (the hash covers payload, signer and signature,
 * so a hit is the very same signed bytes). Bounded; the oldest entries go first.
 */
import { type SignedTx, signingBytes, verify, verifyBatchParallel } from "@deepshard/protocol";
import { txInfo } from "./tx-info.ts";

export class SignatureCache {
  private readonly capacity: number;
  private readonly valid = new Set<string>();
  /** How many signatures this cache actually checked (hits excluded). */
  verified = 0;

  constructor(capacity = 200_000) {
    this.capacity = capacity;
  }

  has(tx: SignedTx): boolean {
    return this.valid.has(txInfo(tx).id);
  }

  /** True when the signature is valid; checks it only if this cache has not seen it valid before. */
  verify(tx: SignedTx): boolean {
    const { id } = txInfo(tx);
    if (this.valid.has(id)) return true;
    let ok = false;
    try {
      ok = verify(tx.signature, signingBytes(tx.payload), tx.signer);
    } catch {
      // A payload the codec refuses cannot carry a valid signature.
    }
    this.verified++;
    if (ok) this.remember(id);
    return ok;
  }

  /** `verify` for many transactions, the unknown ones spread over the cores. */
  async verifyAll(txs: readonly SignedTx[]): Promise<boolean[]> {
    const out = new Array<boolean>(txs.length).fill(true);
    const todo: number[] = [];
    const items: { signature: Uint8Array; message: Uint8Array; publicKey: Uint8Array }[] = [];
    for (let i = 0; i < txs.length; i++) {
      const tx = txs[i]!;
      if (this.valid.has(txInfo(tx).id)) continue;
      let message: Uint8Array;
      try {
        message = signingBytes(tx.payload);
      } catch {
        out[i] = false;
        continue;
      }
      todo.push(i);
      items.push({ signature: tx.signature, message, publicKey: tx.signer });
    }
    if (items.length === 0) return out;
    const verdicts = await verifyBatchParallel(items);
    this.verified += items.length;
    for (let k = 0; k < todo.length; k++) {
      const i = todo[k]!;
      out[i] = verdicts[k]!;
      if (verdicts[k]) this.remember(txInfo(txs[i]!).id);
    }
    return out;
  }

  private remember(id: string): void {
    if (this.valid.size >= this.capacity) {
      const oldest = this.valid.values().next().value;
      if (oldest !== undefined) this.valid.delete(oldest);
    }
    this.valid.add(id);
  }
}
