/**
 * Noise's ChaCha20-Poly1305 through Node's native cipher, with each key imported once.
 *
 * Noise's default passes the raw key bytes to `createCipheriv` for every message (at most 64 KiB), and
 * Node then imports the key anew each time. Importing it once per key takes about 20% off the cipher's
 * CPU time and about 5% off a large request/response on loopback (packages/protocol/README.md,
 * "Benchmarks"). The algorithm, nonces and bytes on the wire are noise's own: peers running stock
 * noise interoperate (test/noise-crypto.test.ts).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from "node:crypto";
import type { ICryptoInterface } from "@chainsafe/libp2p-noise";
import { defaultCrypto } from "@chainsafe/libp2p-noise/crypto";
import { Uint8ArrayList } from "uint8arraylist";

/** Noise types its lists with its own copy of uint8arraylist; lists of either copy mix at run time. */
type NoiseList = ReturnType<ICryptoInterface["chaCha20Poly1305Decrypt"]>;

const ALGORITHM = "chacha20-poly1305";
const TAG_BYTES = 16;
/** Below this, noise's default (WebAssembly) beats a native cipher object; handshake messages are there. */
const NATIVE_FROM = 1200;

/** Noise keeps one key array per direction for a whole session; the byte check covers reuse of an array. */
const imported = new WeakMap<Uint8Array, { bytes: Buffer; key: KeyObject }>();

function secretKey(k: Uint8Array): KeyObject {
  const hit = imported.get(k);
  if (hit?.bytes.equals(k)) return hit.key;
  const entry = { bytes: Buffer.from(k), key: createSecretKey(k) };
  imported.set(k, entry);
  return entry.key;
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
    if (plaintext.byteLength < NATIVE_FROM) {
      return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k);
    }
    const cipher = createCipheriv(ALGORITHM, secretKey(k), nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength });
    // Returned as a list, not joined: noise and the TCP socket take lists, and joining would copy and
    // allocate every sent byte once more (its garbage costs the sender a major GC per 64 MiB sent).
    const sealed = new Uint8ArrayList();
    if (plaintext instanceof Uint8Array) sealed.append(cipher.update(plaintext));
    else for (const piece of plaintext) sealed.append(cipher.update(piece));
    cipher.final(); // a stream cipher: nothing is held back
    sealed.append(cipher.getAuthTag());
    return sealed as unknown as NoiseList;
  },
  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < NATIVE_FROM) {
      return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst);
    }
    const textBytes = ciphertext.byteLength - TAG_BYTES;
    const decipher = createDecipheriv(ALGORITHM, secretKey(k), nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(ad, { plaintextLength: textBytes });
    decipher.setAuthTag(ciphertext.subarray(textBytes));
    if (ciphertext instanceof Uint8Array) {
      const plaintext = decipher.update(ciphertext.subarray(0, textBytes));
      decipher.final(); // throws when the tag does not match
      return plaintext;
    }
    // Most messages straddle two socket reads (65,537 bytes on the wire, at most 65,536 per read): the
    // pieces are deciphered as they are, not joined first.
    const plaintext = new Uint8ArrayList();
    for (const piece of ciphertext.sublist(0, textBytes)) plaintext.append(decipher.update(piece));
    decipher.final();
    return plaintext as unknown as NoiseList;
  },
};
