/**
 * Building blocks shared by every message: field schemas (hashes, keys, amounts, chain id),
 * the signed envelope, and `defineMessage`, which ties a schema to its size limit and codec.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { CodecError, decode, encode } from "../codec.ts";
import {
  array,
  bigUint,
  bytes,
  compareBytes,
  refine,
  type Schema,
  string,
  struct,
  uint,
  version,
} from "../schema.ts";

/** The `v` of every message this code writes and the only one it reads. */
export const PROTOCOL_VERSION = 1;
export const U64_MAX = 2n ** 64n - 1n;
/** Scores and fractions are integers in basis points: 10000 = 1. */
export const BASIS_POINTS = 10_000;

export const v = version(PROTOCOL_VERSION);
/** A sha256 digest: content hashes, weights ids, block and tx hashes, Merkle roots. */
export const hash32 = bytes({ length: 32 });
/** An account: a raw 32-byte ed25519 public key (the `ds1…` address is its display form). */
export const publicKey = bytes({ length: 32 });
export const signature = bytes({ length: 64 });
/** Token amounts in the smallest unit. */
export const amount = bigUint({ max: U64_MAX });
export const nonce = bigUint({ max: U64_MAX });
export const basisPoints = uint({ max: BASIS_POINTS });
export const height = uint();
export const round = uint();
/** Lower-case letters, digits, '.', '_' and '-', e.g. `deepshard-devnet-1`. */
export const chainId = string({ min: 1, max: 64, pattern: /^[a-z0-9][a-z0-9._-]*$/ });

/** A payload with the signature of `signer` over `signingBytes(payload)` (see signing.ts). */
export interface Signed<P> {
  payload: P;
  /** The ed25519 public key of the signer. */
  signer: Uint8Array;
  /** The 64-byte ed25519 signature. */
  signature: Uint8Array;
}

export function signed<P>(payload: Schema<P>): Schema<Signed<P>> {
  return struct({ payload, signer: publicKey, signature }) as Schema<Signed<P>>;
}

/** An array of items sorted strictly ascending by a byte-string key: one canonical order, no duplicates. */
export function sortedBy<T>(item: Schema<T>, key: (item: T) => Uint8Array, max: number, what: string) {
  return refine(array(item, { max }), `sorted by ${what}`, (items, path) => {
    for (let i = 1; i < items.length; i++) {
      if (compareBytes(key(items[i - 1]!), key(items[i]!)) >= 0) {
        throw new CodecError("NON_CANONICAL", `must be sorted by ${what}, strictly ascending`, {
          path: `${path}[${i}]`,
        });
      }
    }
  });
}

export interface MessageCodec<T> {
  /** Root of error paths, e.g. `tx`. */
  readonly name: string;
  readonly schema: Schema<T>;
  /** No encoding of this message is longer: larger inputs are refused before decoding. */
  readonly maxBytes: number;
  /** Validates `value` and encodes it canonically; TOO_LARGE when above its limit. */
  encode(value: T): Uint8Array;
  /** Decodes and validates; every failure is a CodecError. */
  decode(bytes: Uint8Array): T;
}

/**
 * @param limitOf a tighter limit per variant (e.g. per transaction type), checked after decoding.
 */
export function defineMessage<T>(
  name: string,
  schema: Schema<T>,
  maxBytes: number,
  limitOf?: (value: T) => number,
): MessageCodec<T> {
  const checkSize = (size: number, value: T) => {
    const limit = limitOf ? Math.min(maxBytes, limitOf(value)) : maxBytes;
    if (size > limit) {
      throw new CodecError("TOO_LARGE", `encoding of ${size} bytes exceeds the limit of ${limit}`, {
        path: name,
        meta: { size, limit },
      });
    }
  };
  return {
    name,
    schema,
    maxBytes,
    encode(value) {
      const parsed = schema.parse(value, name);
      const out = encode(parsed);
      checkSize(out.length, parsed);
      return out;
    },
    decode(input) {
      const value = schema.parse(decode(input, { maxBytes }), name);
      checkSize(input.length, value);
      return value;
    },
  };
}

/** sha256 of a message's canonical bytes: the id of transactions and blocks. */
export function hashOf<T>(codec: MessageCodec<T>, value: T): Uint8Array {
  return sha256(codec.encode(value));
}
