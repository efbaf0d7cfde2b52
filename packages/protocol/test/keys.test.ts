import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ED25519_TORSION_SUBGROUP, ed25519 } from "@noble/curves/ed25519.js";
import { bytesToNumberLE, equalBytes, numberToBytesLE } from "@noble/curves/utils.js";
import { sha512 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  closeVerifyPool,
  encodingRejection,
  generateKeyPair,
  isDeepshardError,
  KeyError,
  keyPairFromSecret,
  publicKeyFromSecret,
  sign,
  signatureRejection,
  signNoble,
  verify,
  verifyBatch,
  verifyBatchParallel,
  verifyNoble,
} from "../src/index.ts";

afterAll(closeVerifyPool);

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const concat = (...parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));

interface Vector {
  name: string;
  secretKey: string;
  publicKey: string;
  message: string;
  signature: string;
}
const rfc8032 = JSON.parse(
  readFileSync(join(import.meta.dirname, "vectors", "rfc8032-ed25519.json"), "utf8"),
) as {
  vectors: Vector[];
};

const Point = ed25519.Point;
const L = Point.Fn.ORDER;
const mod = (x: bigint) => ((x % L) + L) % L;
const challenge = (R: Uint8Array, A: Uint8Array, M: Uint8Array) =>
  mod(bytesToNumberLE(sha512(concat(R, A, M))));
const scalarBytes = (x: bigint) => numberToBytesLE(x, 32);
const T8 = Point.fromBytes(hex(ED25519_TORSION_SUBGROUP[1]!)); // a point of order 8

/**
 * The bare cofactorless equation encode([S]B − [k]A) = R, decoding A leniently (ZIP-215): true means
 * only our encoding rules stand between this signature and acceptance.
 */
function equationHolds(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  const A = Point.fromBytes(pub, true);
  const R = sig.subarray(0, 32);
  const s = bytesToNumberLE(sig.subarray(32));
  return equalBytes(
    Point.BASE.multiplyUnsafe(s)
      .subtract(A.multiplyUnsafe(challenge(R, pub, msg)))
      .toBytes(),
    R,
  );
}

/** Both implementations must give the same verdict; returns it. */
function agreed(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  const native = verify(sig, msg, pub);
  expect(verifyNoble(sig, msg, pub)).toBe(native);
  return native;
}

/** A message whose challenge k (for these R and A) satisfies `want(k mod 8)`. */
function messageWith(R: Uint8Array, A: Uint8Array, want: (k8: bigint) => boolean): Uint8Array {
  for (let i = 0; ; i++) {
    const msg = new TextEncoder().encode(`edge ${i}`);
    if (want(challenge(R, A, msg) % 8n)) return msg;
  }
}

describe("RFC 8032 §7.1 vectors", () => {
  for (const v of rfc8032.vectors) {
    it(v.name, () => {
      const secret = hex(v.secretKey);
      const msg = hex(v.message);
      expect(toHex(publicKeyFromSecret(secret))).toBe(v.publicKey);
      expect(toHex(keyPairFromSecret(secret).publicKey)).toBe(v.publicKey);
      expect(toHex(sign(secret, msg))).toBe(v.signature);
      expect(toHex(signNoble(secret, msg))).toBe(v.signature);
      expect(agreed(hex(v.signature), msg, hex(v.publicKey))).toBe(true);
      expect(signatureRejection(hex(v.signature), msg, hex(v.publicKey))).toBeUndefined();
      const other = concat(msg, new Uint8Array([1]));
      expect(agreed(hex(v.signature), other, hex(v.publicKey))).toBe(false);
    });
  }
});

describe("signature edge cases", () => {
  const { secretKey, publicKey } = keyPairFromSecret(hex(rfc8032.vectors[0]!.secretKey));
  const a = ed25519.utils.getExtendedPublicKey(secretKey).scalar;
  const msg = new TextEncoder().encode("edge");
  const sig = sign(secretKey, msg);

  it("rejects every single-bit flip of a signature", () => {
    for (let bit = 0; bit < 512; bit++) {
      const bad = Uint8Array.from(sig);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      expect(agreed(bad, msg, publicKey)).toBe(false);
    }
  });

  it("rejects non-canonical S (S + L), which the equation alone would accept", () => {
    const s = bytesToNumberLE(sig.subarray(32));
    const bad = concat(sig.subarray(0, 32), scalarBytes(s + L));
    expect(agreed(bad, msg, publicKey)).toBe(false);
    expect(signatureRejection(bad, msg, publicKey)).toBe("NON_CANONICAL_S");
    const sEqualsL = concat(sig.subarray(0, 32), scalarBytes(L));
    expect(encodingRejection(sEqualsL, publicKey)).toBe("NON_CANONICAL_S");
    const sLMinus1 = concat(sig.subarray(0, 32), scalarBytes(L - 1n));
    expect(encodingRejection(sLMinus1, publicKey)).toBeUndefined();
  });

  it("rejects non-canonical public keys (y ≥ p) that the bare equation accepts", () => {
    // y = p + 1 encodes the identity; with R = identity and S = 0 the equation holds.
    const A = hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    const s0 = concat(Point.ZERO.toBytes(), new Uint8Array(32));
    expect(equationHolds(s0, msg, A)).toBe(true);
    expect(agreed(s0, msg, A)).toBe(false);
    expect(encodingRejection(s0, A)).toBe("NON_CANONICAL_PUBLIC_KEY");
    for (let low = 0xed; low <= 0xff; low++) {
      const y = Uint8Array.from(A);
      y[0] = low;
      expect(encodingRejection(sig, y)).toBe("NON_CANONICAL_PUBLIC_KEY");
      y[31] = 0xff; // sign bit set too
      expect(encodingRejection(sig, y)).toBe("NON_CANONICAL_PUBLIC_KEY");
    }
    const pMinus1 = hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    expect(encodingRejection(sig, pMinus1)).toBe("SMALL_ORDER_PUBLIC_KEY");
  });

  it("rejects every small-order public key, in every encoding, even when the bare equation holds", () => {
    const encodings = ED25519_TORSION_SUBGROUP.map(hex);
    // the "negative zero" encodings of the two points with x = 0
    encodings.push(hex("0100000000000000000000000000000000000000000000000000000000000080"));
    encodings.push(hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"));
    for (const A of encodings) {
      expect(encodingRejection(sig, A)).toBe("SMALL_ORDER_PUBLIC_KEY");
      expect(agreed(sig, msg, A)).toBe(false);
    }
    // A of order 8, R = [r]B, S = r: holds whenever [k]A = 0, i.e. k ≡ 0 (mod 8).
    const A = T8.toBytes();
    const r = 12345n;
    const R = Point.BASE.multiply(r).toBytes();
    const m = messageWith(R, A, (k8) => k8 === 0n);
    const forged = concat(R, scalarBytes(r));
    expect(equationHolds(forged, m, A)).toBe(true);
    expect(agreed(forged, m, A)).toBe(false);
    expect(ed25519.verify(forged, m, A, { zip215: true })).toBe(true);
  });

  it("rejects a small-order R that the bare equation accepts", () => {
    // R = identity, S = k·a: [S]B − [k]A = identity, so the equation holds.
    const R = Point.ZERO.toBytes();
    const s = mod(challenge(R, publicKey, msg) * a);
    const bad = concat(R, scalarBytes(s));
    expect(equationHolds(bad, msg, publicKey)).toBe(true);
    expect(signatureRejection(bad, msg, publicKey)).toBe("SMALL_ORDER_R");
    expect(agreed(bad, msg, publicKey)).toBe(false);
    for (const T of ED25519_TORSION_SUBGROUP) {
      expect(encodingRejection(concat(hex(T), sig.subarray(32)), publicKey)).toBe("SMALL_ORDER_R");
    }
  });

  it("rejects non-canonical R and R off the curve", () => {
    // y = p + 1: the identity again, non-canonically; the computed R re-encodes canonically.
    const R = hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    const s = mod(challenge(R, publicKey, msg) * a);
    const bad = concat(R, scalarBytes(s));
    expect(signatureRejection(bad, msg, publicKey)).toBe("NON_CANONICAL_R");
    expect(agreed(bad, msg, publicKey)).toBe(false);
    // y = 2 is not on the curve
    const offCurve = concat(hex(`02${"00".repeat(31)}`), sig.subarray(32));
    expect(() => Point.fromBytes(offCurve.subarray(0, 32))).toThrow();
    expect(encodingRejection(offCurve, publicKey)).toBeUndefined();
    expect(signatureRejection(offCurve, msg, publicKey)).toBe("EQUATION");
    expect(agreed(offCurve, msg, publicKey)).toBe(false);
  });

  it("rejects a public key off the curve", () => {
    const A = hex(`02${"00".repeat(31)}`);
    expect(encodingRejection(sig, A)).toBeUndefined();
    expect(agreed(sig, msg, A)).toBe(false);
  });

  it("uses the cofactorless equation on mixed-order A and R, identically in both implementations", () => {
    // A = [a]B + T8, R = [r]B, S = r + k·a: [S]B − [k]A = R − [k]T8, equal to R iff k ≡ 0 (mod 8).
    const A = Point.BASE.multiply(a).add(T8).toBytes();
    const r = 777n;
    const R = Point.BASE.multiply(r).toBytes();
    const forge = (m: Uint8Array) => concat(R, scalarBytes(mod(r + challenge(R, A, m) * a)));
    const clean = messageWith(R, A, (k8) => k8 === 0n);
    const dirty = messageWith(R, A, (k8) => k8 !== 0n);
    expect(agreed(forge(clean), clean, A)).toBe(true);
    expect(agreed(forge(dirty), dirty, A)).toBe(false);
    // noble's own verify is cofactored: it accepts the second one, which is why we do not use it.
    expect(ed25519.verify(forge(dirty), dirty, A)).toBe(true);

    // R = [r]B + T8 with a clean A: never holds cofactorless, always cofactored.
    const dirtyR = Point.BASE.multiply(r).add(T8).toBytes();
    const s = mod(r + challenge(dirtyR, publicKey, msg) * a);
    const withDirtyR = concat(dirtyR, scalarBytes(s));
    expect(agreed(withDirtyR, msg, publicKey)).toBe(false);
    expect(ed25519.verify(withDirtyR, msg, publicKey)).toBe(true);
  });

  it("treats wrong lengths as invalid and wrong types as a typed error", () => {
    for (const n of [0, 1, 32, 63, 65, 128]) {
      const other = new Uint8Array(n);
      other.set(sig.subarray(0, Math.min(n, 64)));
      expect(agreed(other, msg, publicKey)).toBe(false);
      expect(signatureRejection(other, msg, publicKey)).toBe("SIGNATURE_LENGTH");
    }
    for (const n of [0, 31, 33, 64]) {
      const pub = new Uint8Array(n);
      pub.set(publicKey.subarray(0, Math.min(n, 32)));
      expect(agreed(sig, msg, pub)).toBe(false);
      expect(signatureRejection(sig, msg, pub)).toBe("PUBLIC_KEY_LENGTH");
    }
    expect(() => verify(sig, "edge" as unknown as Uint8Array, publicKey)).toThrow(KeyError);
    for (const bad of [new Uint8Array(31), new Uint8Array(64), "x", undefined]) {
      try {
        sign(bad as Uint8Array, msg);
        expect.unreachable();
      } catch (err) {
        expect(isDeepshardError(err, "INVALID_SECRET_KEY")).toBe(true);
      }
      expect(() => publicKeyFromSecret(bad as Uint8Array)).toThrow(KeyError);
    }
  });

  it("verifies signatures over subarrays of a larger buffer", () => {
    const buf = new Uint8Array(200);
    buf.set(sig, 10);
    buf.set(publicKey, 100);
    buf.set(msg, 150);
    expect(agreed(buf.subarray(10, 74), buf.subarray(150, 150 + msg.length), buf.subarray(100, 132))).toBe(
      true,
    );
  });
});

describe("native and noble agree", () => {
  type Mutation =
    | { kind: "none" }
    | { kind: "flip"; part: "sig" | "msg" | "pub"; bit: number }
    | { kind: "random" };
  const mutation = fc.oneof(
    fc.constant<Mutation>({ kind: "none" }),
    fc.record({
      kind: fc.constant("flip" as const),
      part: fc.constantFrom("sig" as const, "msg" as const, "pub" as const),
      bit: fc.nat(),
    }),
    fc.constant<Mutation>({ kind: "random" }),
  );

  it("on random valid and mutated signatures", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 300 }),
        mutation,
        fc.uint8Array({ minLength: 96, maxLength: 96 }),
        (secret, message, m, noise) => {
          let sig = sign(secret, message);
          let pub = publicKeyFromSecret(secret);
          let msg = message;
          if (m.kind === "flip") {
            const target = m.part === "sig" ? sig : m.part === "pub" ? pub : msg;
            if (target.length > 0) {
              const copy = Uint8Array.from(target);
              const bit = m.bit % (copy.length * 8);
              copy[bit >> 3]! ^= 1 << (bit & 7);
              if (m.part === "sig") sig = copy;
              else if (m.part === "pub") pub = copy;
              else msg = copy;
            }
          } else if (m.kind === "random") {
            sig = noise.subarray(0, 64);
            pub = noise.subarray(64);
          }
          const verdict = agreed(sig, msg, pub);
          if (m.kind === "none") expect(verdict).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("on random keys with a random prime-order-plus-torsion component", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: L - 1n }),
        fc.bigInt({ min: 1n, max: L - 1n }),
        fc.nat({ max: 7 }),
        fc.nat({ max: 7 }),
        fc.uint8Array({ maxLength: 64 }),
        (a, r, tA, tR, msg) => {
          const A = Point.BASE.multiply(a)
            .add(T8.multiplyUnsafe(BigInt(tA)))
            .toBytes();
          const R = Point.BASE.multiply(r)
            .add(T8.multiplyUnsafe(BigInt(tR)))
            .toBytes();
          const sig = concat(R, scalarBytes(mod(r + challenge(R, A, msg) * a)));
          const verdict = agreed(sig, msg, A);
          // Cofactorless: it holds exactly when the torsion parts cancel, R's T = −[k]A's T.
          const k8 = (BigInt(tA) * challenge(R, A, msg)) % 8n;
          const residue = T8.multiplyUnsafe(BigInt(tR)).add(T8.multiplyUnsafe(k8));
          expect(verdict).toBe(residue.is0());
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("keys and batches", () => {
  it("generates distinct key pairs that sign and verify", () => {
    const one = generateKeyPair();
    const two = generateKeyPair();
    expect(toHex(one.secretKey)).not.toBe(toHex(two.secretKey));
    expect(one.publicKey).toHaveLength(32);
    const msg = new Uint8Array([1, 2, 3]);
    expect(verify(sign(one.secretKey, msg), msg, one.publicKey)).toBe(true);
    expect(verify(sign(one.secretKey, msg), msg, two.publicKey)).toBe(false);
  });

  it("verifyBatch gives verify's verdict for each item", () => {
    const items = Array.from({ length: 20 }, (_, i) => {
      const { secretKey, publicKey } = generateKeyPair();
      const message = new Uint8Array([i]);
      const signature = sign(secretKey, message);
      if (i % 3 === 0) signature[5]! ^= 1;
      return { signature, message, publicKey };
    });
    expect(verifyBatch(items)).toEqual(items.map((_, i) => i % 3 !== 0));
    expect(verifyBatch([])).toEqual([]);
  });

  it("verifyBatchParallel gives verifyBatch's verdicts, in order, for batches small and large", async () => {
    const keys = Array.from({ length: 10 }, () => generateKeyPair());
    const shared = new Uint8Array(5000);
    const items = Array.from({ length: 300 }, (_, i) => {
      const { secretKey, publicKey } = keys[i % keys.length]!;
      // messages of varied lengths, some of them views into one larger buffer
      const message = i % 2 ? shared.subarray(i, i + (i % 17)) : new Uint8Array([i & 255, i >> 8]);
      let signature = sign(secretKey, message);
      if (i % 7 === 0) signature = Uint8Array.from(signature.map((b, j) => (j === 40 ? b ^ 4 : b)));
      if (i % 11 === 0) signature = signature.subarray(0, 63);
      return { signature, message, publicKey };
    });
    const expected = verifyBatch(items);
    expect(expected.filter(Boolean).length).toBeGreaterThan(200);
    expect(await verifyBatchParallel(items)).toEqual(expected);
    expect(await verifyBatchParallel(items.slice(0, 5))).toEqual(expected.slice(0, 5));
    expect(await verifyBatchParallel([])).toEqual([]);
    await closeVerifyPool();
    expect(await verifyBatchParallel(items)).toEqual(expected);
  });

  it("keeps verifying correctly when more keys pass through than the cache holds", () => {
    const msg = new Uint8Array([9]);
    const first = generateKeyPair();
    const firstSig = sign(first.secretKey, msg);
    for (let i = 0; i < 9000; i++) verify(firstSig, msg, new Uint8Array(randomBytes(32)));
    expect(verify(firstSig, msg, first.publicKey)).toBe(true);
  });
});
