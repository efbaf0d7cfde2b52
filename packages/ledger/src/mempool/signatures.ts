/**
 * Each transaction signature is verified once per node: the gossip validator, the mempool and the
 * application all ask this cache, keyed by tx hash (the hash covers payload, signer and signature,
 * so a hit is the very same signed bytes). Bounded; the oldest entries go first.
 */
import {
  SIGNING_DOMAIN,
  type SignedTx,
  signingBytes,
  verify,
  verifyBatchParallel,
} from "@deepshard/protocol";
import { txInfo } from "./tx-info.ts";

const ascii = (text: string) => new TextEncoder().encode(text);
/** The canonical (deterministic CBOR) signed envelope: keys in encoded order signer, payload, signature. */
const SIGNER_KEY = Uint8Array.of(0xa3, 0x66, ...ascii("signer"), 0x58, 0x20);
const PAYLOAD_KEY = Uint8Array.of(0x67, ...ascii("payload"));
const SIGNATURE_KEY = Uint8Array.of(0x69, ...ascii("signature"), 0x58, 0x40);
const PAYLOAD_AT = SIGNER_KEY.length + 32 + PAYLOAD_KEY.length;
const SUFFIX = SIGNATURE_KEY.length + 64;
const domains = new Map<string, Uint8Array>();

function startsWithAt(bytes: Uint8Array, part: Uint8Array, at: number): boolean {
  for (let i = 0; i < part.length; i++) if (bytes[at + i] !== part[i]) return false;
  return true;
}

/**
 * `signingBytes(tx.payload)` taken from the transaction's canonical bytes: the payload's canonical
 * encoding sits inside the envelope's, so no re-encoding is needed. Falls back to `signingBytes`
 * when the envelope is not laid out as expected.
 */
export function txSigningBytes(tx: SignedTx): Uint8Array {
  const { bytes } = txInfo(tx);
  const end = bytes.length - SUFFIX;
  if (
    end <= PAYLOAD_AT ||
    !startsWithAt(bytes, SIGNER_KEY, 0) ||
    !startsWithAt(bytes, PAYLOAD_KEY, SIGNER_KEY.length + 32) ||
    !startsWithAt(bytes, SIGNATURE_KEY, end)
  ) {
    return signingBytes(tx.payload);
  }
  let domain = domains.get(tx.payload.type);
  if (!domain) {
    domain = ascii(SIGNING_DOMAIN + tx.payload.type);
    domains.set(tx.payload.type, domain);
  }
  const out = new Uint8Array(domain.length + end - PAYLOAD_AT);
  out.set(domain);
  out.set(bytes.subarray(PAYLOAD_AT, end), domain.length);
  return out;
}

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
      ok = verify(tx.signature, txSigningBytes(tx), tx.signer);
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
        message = txSigningBytes(tx);
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
