/**
 * Ed25519 keys and the one signature check of the network.
 *
 * Every node must accept exactly the same signatures, or a block valid on one node is invalid on
 * another. Ed25519 implementations differ at the edges (RFC 8032 vs ZIP-215 vs OpenSSL), so
 * `verify` pins these rules, all of which both of our implementations apply identically:
 *
 * 1. Lengths: public key 32 bytes, signature 64 bytes; anything else is invalid.
 * 2. S must be canonical: 0 ≤ S < L (RFC 8032 §5.1.7). Checked on bytes, up front.
 * 3. A (public key) and R must be canonical encodings: y < p. Checked on bytes, up front.
 * 4. A and R must not be small-order points (any of the 8 torsion points, in any encoding, including
 *    the "negative zero" ones with the sign bit set on x = 0). Checked against a blacklist of their
 *    y-coordinates, up front.
 * 5. A must decode to a point on the curve, then the COFACTORLESS equation must hold byte for byte:
 *    encode([S]B − [k]A) = R, with k = SHA-512(R ‖ A ‖ M) mod L over the bytes as received.
 *    This is what OpenSSL computes. noble's `ed25519.verify` checks the cofactored equation
 *    [8]([S]B − R − [k]A) = 0 instead, which accepts more signatures when A or R carry a torsion
 *    component, so our noble path computes the cofactorless equation itself from noble's point
 *    arithmetic. Differences from ZIP-215: ZIP-215 accepts non-canonical A and R and small-order
 *    points and uses the cofactored equation; we reject all of these. A mixed-order A (prime-order
 *    part plus torsion) is not rejected as such: it simply verifies only under the cofactorless
 *    equation, the same way on every node.
 *
 * Rules 2–4 run on bytes before any curve arithmetic, so the result never depends on what a given
 * OpenSSL version does with such inputs (the OpenSSL 3.5 in Node 24 refuses small-order A and R by
 * itself; other versions and libraries differ) nor on how an implementation reduces a non-canonical y.
 *
 * Batch verification applies the same per-signature check, spread over worker threads (a randomised
 * combined equation would be cofactored and therefore would not agree with rule 5).
 */
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
  randomBytes,
} from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ed25519 } from "@noble/curves/ed25519.js";
import { bytesToNumberLE, equalBytes } from "@noble/curves/utils.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { DeepshardError } from "./errors.ts";

export const SECRET_KEY_LENGTH = 32;
export const PUBLIC_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

export type KeyErrorCode = "INVALID_SECRET_KEY" | "INVALID_PUBLIC_KEY" | "INVALID_SIGNATURE_INPUT";

export class KeyError extends DeepshardError<KeyErrorCode> {
  override name = "KeyError";
}

/** An account key: the 32-byte ed25519 seed (RFC 8032 "private key") and its public key. */
export interface KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

/** Why a signature is refused; `undefined` from `signatureRejection` means it verifies. */
export type SignatureRejection =
  | "SIGNATURE_LENGTH"
  | "PUBLIC_KEY_LENGTH"
  | "NON_CANONICAL_S"
  | "NON_CANONICAL_PUBLIC_KEY"
  | "SMALL_ORDER_PUBLIC_KEY"
  | "NON_CANONICAL_R"
  | "SMALL_ORDER_R"
  | "EQUATION";

/** L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const L_BYTES = Uint8Array.from(
  Buffer.from("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010", "hex"),
);
const L = bytesToNumberLE(L_BYTES);

/**
 * The y-coordinates (little-endian, sign bit cleared) of the 8 small-order points: the identity
 * (y = 1), the point of order 2 (y = −1), the two of order 4 (y = 0) and the four of order 8 (±y8).
 */
const SMALL_ORDER_Y = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
].map((hex) => Uint8Array.from(Buffer.from(hex, "hex")));

/** True when the 32 bytes at `offset` encode y ≥ p = 2^255 − 19 (ignoring the sign bit). */
function isNonCanonicalY(b: Uint8Array, offset: number): boolean {
  if ((b[offset + 31]! & 0x7f) !== 0x7f) return false;
  for (let i = 30; i >= 1; i--) if (b[offset + i] !== 0xff) return false;
  return b[offset]! >= 0xed;
}

function isSmallOrderEncoding(b: Uint8Array, offset: number): boolean {
  outer: for (const y of SMALL_ORDER_Y) {
    for (let i = 0; i < 31; i++) if (b[offset + i] !== y[i]) continue outer;
    if ((b[offset + 31]! & 0x7f) === y[31]) return true;
  }
  return false;
}

/** S (bytes 32..63 of the signature, little-endian) < L. */
function isCanonicalS(sig: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = sig[32 + i]!;
    const l = L_BYTES[i]!;
    if (s < l) return true;
    if (s > l) return false;
  }
  return false;
}

/**
 * The byte-level rules 1–4 (see the top of this file): cheap, and identical for both
 * implementations, so that native and noble only ever see inputs on which they agree.
 */
export function encodingRejection(
  signature: Uint8Array,
  publicKey: Uint8Array,
): SignatureRejection | undefined {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return "SIGNATURE_LENGTH";
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH)
    return "PUBLIC_KEY_LENGTH";
  if (!isCanonicalS(signature)) return "NON_CANONICAL_S";
  if (isNonCanonicalY(publicKey, 0)) return "NON_CANONICAL_PUBLIC_KEY";
  if (isSmallOrderEncoding(publicKey, 0)) return "SMALL_ORDER_PUBLIC_KEY";
  if (isNonCanonicalY(signature, 0)) return "NON_CANONICAL_R";
  if (isSmallOrderEncoding(signature, 0)) return "SMALL_ORDER_R";
  return undefined;
}

const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * KeyObjects cost ~18 µs to build, about a third of a native verification, and the same few
 * thousand accounts and validators sign over and over: keep the most recent ones.
 */
const KEY_CACHE_SIZE = 8192;
const keyCache = new Map<string, KeyObject>();

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString("latin1");
  let key = keyCache.get(id);
  if (key) {
    // Map keeps insertion order: re-inserting marks the entry most recently used.
    keyCache.delete(id);
  } else {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: "der", type: "spki" });
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
  }
  keyCache.set(id, key);
  return key;
}

function assertBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new KeyError("INVALID_SIGNATURE_INPUT", `${what} must be a Uint8Array`, {
      details: `got ${value === null ? "null" : typeof value}`,
    });
  }
}

function checkSecretKey(secretKey: unknown): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_LENGTH) {
    throw new KeyError("INVALID_SECRET_KEY", `secret key must be ${SECRET_KEY_LENGTH} bytes`, {
      details: secretKey instanceof Uint8Array ? `got ${secretKey.length} bytes` : `got ${typeof secretKey}`,
    });
  }
  return secretKey;
}

/** The public key of a 32-byte secret seed. */
export function publicKeyFromSecret(secretKey: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(checkSecretKey(secretKey));
}

/** A key pair from a 32-byte secret seed (RFC 8032 §5.1.5). */
export function keyPairFromSecret(secretKey: Uint8Array): KeyPair {
  const secret = Uint8Array.from(checkSecretKey(secretKey));
  return { secretKey: secret, publicKey: ed25519.getPublicKey(secret) };
}

/** A fresh key pair from the operating system's CSPRNG. */
export function generateKeyPair(): KeyPair {
  return keyPairFromSecret(new Uint8Array(randomBytes(SECRET_KEY_LENGTH)));
}

/**
 * Signs `message` (RFC 8032, deterministic: noble and OpenSSL produce the same bytes). Through
 * Node's crypto, about 6× faster than noble; the secret's KeyObject is not cached on purpose.
 */
export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array<ArrayBuffer> {
  checkSecretKey(secretKey);
  assertBytes(message, "message");
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, secretKey]),
    format: "der",
    type: "pkcs8",
  });
  const sig = nodeSign(null, message, key);
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.length);
}

/** Signs with noble only: the reference for `sign`. */
export function signNoble(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  checkSecretKey(secretKey);
  assertBytes(message, "message");
  return ed25519.sign(message, secretKey);
}

/** Rule 5 through Node's crypto (OpenSSL); assumes `encodingRejection` passed. */
function equationHoldsNative(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  return nodeVerify(null, message, publicKeyObject(publicKey), signature);
}

/** Rule 5 through noble's point arithmetic; assumes `encodingRejection` passed. */
function equationHoldsNoble(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  let A: ReturnType<typeof ed25519.Point.fromBytes>;
  try {
    A = ed25519.Point.fromBytes(publicKey);
  } catch {
    return false;
  }
  const r = signature.subarray(0, 32);
  const h = sha512.create().update(r).update(publicKey).update(message).digest();
  const k = bytesToNumberLE(h) % L;
  const s = bytesToNumberLE(signature.subarray(32, 64));
  const expectedR = ed25519.Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k));
  return equalBytes(expectedR.toBytes(), r);
}

/**
 * THE signature check of the network (rules at the top of this file), through Node's crypto.
 * Returns false for any signature that does not satisfy every rule, including wrong lengths;
 * throws a KeyError only when an argument is not a Uint8Array.
 */
export function verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  assertBytes(message, "message");
  if (encodingRejection(signature, publicKey) !== undefined) return false;
  return equationHoldsNative(signature, message, publicKey);
}

/** The same rules as `verify`, computed with noble only: the reference implementation. */
export function verifyNoble(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  assertBytes(message, "message");
  if (encodingRejection(signature, publicKey) !== undefined) return false;
  return equationHoldsNoble(signature, message, publicKey);
}

/** Why `verify` refuses this signature, or `undefined` when it accepts it (for logs and errors). */
export function signatureRejection(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
): SignatureRejection | undefined {
  assertBytes(message, "message");
  const rejection = encodingRejection(signature, publicKey);
  if (rejection !== undefined) return rejection;
  return equationHoldsNative(signature, message, publicKey) ? undefined : "EQUATION";
}

export interface SignedItem {
  signature: Uint8Array;
  message: Uint8Array;
  publicKey: Uint8Array;
}

/** Verifies many signatures in this thread; result i is `verify(items[i])`. */
export function verifyBatch(items: readonly SignedItem[]): boolean[] {
  const out = new Array<boolean>(items.length);
  for (let i = 0; i < items.length; i++) {
    const { signature, message, publicKey } = items[i]!;
    out[i] = verify(signature, message, publicKey);
  }
  return out;
}

/** Below this many signatures the hand-off to a worker costs more than it saves. */
const PARALLEL_MIN = 64;

/**
 * The worker runs only the native equation: the byte rules ran in the caller's thread, and the
 * OpenSSL call is the very one `verify` makes, so the verdicts cannot differ from `verifyBatch`.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
const SPKI = Buffer.from("${SPKI_PREFIX.toString("hex")}", "hex");
const keys = new Map();
parentPort.on("message", ({ id, sigs, pubs, msgs, ends }) => {
  const out = new Uint8Array(ends.length);
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    const pub = pubs.subarray(i * 32, i * 32 + 32);
    const kid = Buffer.from(pub).toString("latin1");
    let key = keys.get(kid);
    if (!key) {
      if (keys.size >= ${KEY_CACHE_SIZE}) keys.clear();
      key = createPublicKey({ key: Buffer.concat([SPKI, pub]), format: "der", type: "spki" });
      keys.set(kid, key);
    }
    out[i] = verify(null, msgs.subarray(start, ends[i]), key, sigs.subarray(i * 64, i * 64 + 64)) ? 1 : 0;
    start = ends[i];
  }
  parentPort.postMessage({ id, out }, [out.buffer]);
});
`;

interface PoolWorker {
  worker: Worker;
  /** Jobs in flight; resolved with `undefined` when the worker died, and the caller redoes them. */
  pending: Map<number, (out: Uint8Array | undefined) => void>;
}

let pool: PoolWorker[] | undefined;
let nextJobId = 0;

function startPool(): PoolWorker[] {
  if (pool) return pool;
  const size = Math.max(0, availableParallelism() - 1);
  const workers: PoolWorker[] = [];
  for (let i = 0; i < size; i++) {
    const entry: PoolWorker = { worker: new Worker(WORKER_SOURCE, { eval: true }), pending: new Map() };
    const fail = () => {
      pool = pool?.filter((w) => w !== entry);
      for (const done of entry.pending.values()) done(undefined);
      entry.pending.clear();
    };
    entry.worker.on("message", ({ id, out }: { id: number; out: Uint8Array }) => {
      entry.pending.get(id)?.(out);
      entry.pending.delete(id);
      if (entry.pending.size === 0) entry.worker.unref();
    });
    entry.worker.on("error", fail);
    entry.worker.on("exit", fail);
    // An idle pool must not keep the process alive.
    entry.worker.unref();
    workers.push(entry);
  }
  pool = workers;
  return workers;
}

function runOnWorker(
  entry: PoolWorker,
  items: readonly SignedItem[],
  indices: number[],
): Promise<Uint8Array | undefined> {
  const n = indices.length;
  const sigs = new Uint8Array(n * 64);
  const pubs = new Uint8Array(n * 32);
  const ends = new Uint32Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    const { signature, message, publicKey } = items[indices[k]!]!;
    sigs.set(signature, k * 64);
    pubs.set(publicKey, k * 32);
    total += message.length;
    ends[k] = total;
  }
  const msgs = new Uint8Array(total);
  for (let k = 0; k < n; k++) msgs.set(items[indices[k]!]!.message, k === 0 ? 0 : ends[k - 1]!);
  const id = nextJobId++;
  return new Promise((resolve) => {
    entry.pending.set(id, resolve);
    entry.worker.ref();
    entry.worker.postMessage({ id, sigs, pubs, msgs, ends }, [
      sigs.buffer,
      pubs.buffer,
      msgs.buffer,
      ends.buffer,
    ]);
  });
}

/**
 * `verifyBatch` spread over the cores: worker threads take equal shares while this thread does its
 * own, which on this 2-core machine nearly doubles throughput for blocks of signatures (see
 * bench/crypto.ts). Same verdicts as `verifyBatch`; small batches stay in this thread.
 */
export async function verifyBatchParallel(items: readonly SignedItem[]): Promise<boolean[]> {
  const out = new Array<boolean>(items.length).fill(false);
  const todo: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const { signature, message, publicKey } = items[i]!;
    assertBytes(message, "message");
    if (encodingRejection(signature, publicKey) === undefined) todo.push(i);
  }
  const workers = todo.length >= PARALLEL_MIN ? startPool() : [];
  const share = Math.ceil(todo.length / (workers.length + 1));
  const jobs = workers.map((entry, w) => {
    const indices = todo.slice(w * share, (w + 1) * share);
    return { indices, result: runOnWorker(entry, items, indices) };
  });
  const native = (i: number) =>
    equationHoldsNative(items[i]!.signature, items[i]!.message, items[i]!.publicKey);
  for (const i of todo.slice(workers.length * share)) out[i] = native(i);
  for (const { indices, result } of jobs) {
    const verdicts = await result;
    for (let k = 0; k < indices.length; k++)
      out[indices[k]!] = verdicts ? verdicts[k] === 1 : native(indices[k]!);
  }
  return out;
}

/** Stops the worker threads of `verifyBatchParallel` (they restart on the next call). */
export async function closeVerifyPool(): Promise<void> {
  const workers = pool ?? [];
  pool = undefined;
  await Promise.all(workers.map((w) => w.worker.terminate()));
}
