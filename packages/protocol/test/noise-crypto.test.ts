/**
 * The host's noise cipher must be noise's own on the wire: byte-equal output to noise's default crypto
 * and each other's messages open, whole or split across reads; a changed byte or another key fails.
 */
import { randomBytes } from "node:crypto";
import type { ICryptoInterface } from "@chainsafe/libp2p-noise";
import { defaultCrypto } from "@chainsafe/libp2p-noise/crypto";
import { Uint8ArrayList } from "uint8arraylist";
import { describe, expect, it } from "vitest";
import { noiseCrypto } from "../src/host/noise-crypto.ts";

/** Noise types its lists with its own copy of uint8arraylist; the runtime shape is the same. */
type Pieces = Parameters<ICryptoInterface["chaCha20Poly1305Encrypt"]>[0];
const list = (...parts: Uint8Array[]) => new Uint8ArrayList(...parts) as unknown as Pieces;
const flat = (x: Uint8Array | { subarray(): Uint8Array }) => Uint8Array.from(x.subarray());
const nonce = (n: number) => {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setUint32(4, n, true);
  return out;
};

describe("noiseCrypto", () => {
  const k = randomBytes(32);
  const ad = randomBytes(32);

  it("seals exactly as noise's default, and each opens the other's messages", () => {
    for (const [n, size] of [0, 1, 1199, 1200, 4096, 65519].entries()) {
      const plain = randomBytes(size);
      const ours = flat(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce(n), ad, k));
      const theirs = flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce(n), ad, k));
      expect(ours).toEqual(theirs);
      expect(flat(noiseCrypto.chaCha20Poly1305Decrypt(theirs, nonce(n), ad, k))).toEqual(
        Uint8Array.from(plain),
      );
      expect(flat(defaultCrypto.chaCha20Poly1305Decrypt(ours, nonce(n), ad, k))).toEqual(
        Uint8Array.from(plain),
      );
    }
  });

  it("takes plaintext and ciphertext split into pieces", () => {
    const plain = randomBytes(65519);
    const pieces = list(plain.subarray(0, 10_000), plain.subarray(10_000));
    const sealed = flat(noiseCrypto.chaCha20Poly1305Encrypt(pieces, nonce(1), ad, k));
    expect(sealed).toEqual(flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce(1), ad, k)));
    const split = list(sealed.subarray(0, 65_530), sealed.subarray(65_530));
    expect(flat(noiseCrypto.chaCha20Poly1305Decrypt(split, nonce(1), ad, k))).toEqual(Uint8Array.from(plain));
  });

  it("refuses a changed byte, tag, nonce or key", () => {
    const plain = randomBytes(4096);
    const sealed = flat(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce(2), ad, k));
    for (const at of [0, 2000, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[at]! ^= 1;
      expect(() => noiseCrypto.chaCha20Poly1305Decrypt(bad, nonce(2), ad, k)).toThrow();
    }
    expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce(3), ad, k)).toThrow();
    expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce(2), ad, randomBytes(32))).toThrow();
  });

  it("follows a key array whose bytes change", () => {
    const key = Uint8Array.from(k);
    const plain = randomBytes(2048);
    noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce(0), ad, key);
    key[0]! ^= 0xff;
    const sealed = flat(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce(0), ad, key));
    expect(sealed).toEqual(flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce(0), ad, key)));
  });
});
