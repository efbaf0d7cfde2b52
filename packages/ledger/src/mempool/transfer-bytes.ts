/**
 * Reads a signed transfer straight from its canonical bytes. Transfers are nearly all the traffic,
 * and their canonical encoding has exactly one layout (keys in one order, fixed-size keys and
 * signature, shortest integers), so reading it field by field gives what `decodeTx` gives at a
 * tenth of the cost (the general codec decodes, re-encodes to prove the bytes canonical, then
 * checks the schema). Anything else, valid or not, is left to `decodeTx` and its typed errors.
 */
import { type SignedTx, TX_MAX_BYTES, U64_MAX } from "@deepshard/protocol";

const ascii = (text: string) => Array.from(text, (c) => c.charCodeAt(0));
/** A 32-byte or 64-byte byte string's header. */
const BYTES32 = [0x58, 0x20];
const BYTES64 = [0x58, 0x40];
/** Map keys as encoded (text string header and characters), in canonical order. */
const key = (name: string) => [0x60 + name.length, ...ascii(name)];
const SIGNER = [0xa3, ...key("signer"), ...BYTES32];
const PAYLOAD = [...key("payload"), 0xa7, ...key("v"), 0x01, ...key("to"), ...BYTES32];
const FEE = key("fee");
const TYPE = [...key("type"), ...key("transfer")];
const NONCE = key("nonce");
const AMOUNT = key("amount");
const CHAIN_ID = key("chainId");
const SIGNATURE = [...key("signature"), ...BYTES64];
const MAX_CHAIN_ID = 64;

class Reader {
  pos = 0;
  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** Consumes `expected` if the bytes continue with it. */
  take(expected: readonly number[]): boolean {
    const { bytes, pos } = this;
    if (pos + expected.length > bytes.length) return false;
    for (let i = 0; i < expected.length; i++) if (bytes[pos + i] !== expected[i]) return false;
    this.pos = pos + expected.length;
    return true;
  }

  copy(length: number): Uint8Array | undefined {
    if (this.pos + length > this.bytes.length) return undefined;
    // A plain copy (the input may be a Buffer, whose slices share its memory).
    const out = new Uint8Array(this.bytes.subarray(this.pos, this.pos + length));
    this.pos += length;
    return out;
  }

  /** An unsigned integer in its shortest encoding (as the canonical profile requires). */
  uint(): bigint | undefined {
    const { bytes } = this;
    const head = bytes[this.pos];
    if (head === undefined || head >> 5 !== 0) return undefined;
    const info = head & 0x1f;
    if (info < 24) {
      this.pos += 1;
      return BigInt(info);
    }
    if (info > 27) return undefined;
    const size = 1 << (info - 24);
    if (this.pos + 1 + size > bytes.length) return undefined;
    let n = 0n;
    for (let i = 1; i <= size; i++) n = (n << 8n) | BigInt(bytes[this.pos + i]!);
    // Shortest form: the value needs this size (one byte holds 24..255).
    const least = size === 1 ? 24n : 1n << BigInt(4 * size);
    if (n < least || n > U64_MAX) return undefined;
    this.pos += 1 + size;
    return n;
  }

  /** A chain id: 1..64 characters of [a-z0-9._-], the first a letter or digit. */
  chainId(): string | undefined {
    const { bytes } = this;
    const head = bytes[this.pos];
    if (head === undefined) return undefined;
    let length: number;
    let at: number;
    if (head > 0x60 && head < 0x78) {
      length = head - 0x60;
      at = this.pos + 1;
    } else if (head === 0x78) {
      length = bytes[this.pos + 1] ?? 0;
      at = this.pos + 2;
      if (length < 24 || length > MAX_CHAIN_ID) return undefined;
    } else return undefined;
    if (at + length > bytes.length) return undefined;
    let text = "";
    for (let i = 0; i < length; i++) {
      const c = bytes[at + i]!;
      const alnum = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
      if (!alnum && (i === 0 || (c !== 0x2e && c !== 0x5f && c !== 0x2d))) return undefined;
      text += String.fromCharCode(c);
    }
    this.pos = at + length;
    return text;
  }
}

/** The signed transfer of canonical `bytes`, or undefined when the bytes are not laid out as one. */
export function readTransfer(bytes: Uint8Array): SignedTx | undefined {
  if (bytes.length > TX_MAX_BYTES.transfer) return undefined;
  const r = new Reader(bytes);
  if (!r.take(SIGNER)) return undefined;
  const signer = r.copy(32);
  if (!signer || !r.take(PAYLOAD)) return undefined;
  const to = r.copy(32);
  if (!to || !r.take(FEE)) return undefined;
  const fee = r.uint();
  if (fee === undefined || !r.take(TYPE) || !r.take(NONCE)) return undefined;
  const nonce = r.uint();
  if (nonce === undefined || !r.take(AMOUNT)) return undefined;
  const amount = r.uint();
  if (amount === undefined || !r.take(CHAIN_ID)) return undefined;
  const chainId = r.chainId();
  if (chainId === undefined || !r.take(SIGNATURE)) return undefined;
  const signature = r.copy(64);
  if (!signature || r.pos !== bytes.length) return undefined;
  return {
    payload: { v: 1, type: "transfer", chainId, nonce, fee, to, amount },
    signer,
    signature,
  };
}
