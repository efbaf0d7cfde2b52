/**
 * The canonical byte form of state entries: deterministic CBOR (sorted map keys, shortest
 * integers) in which every bigint is a tagged bignum (tags 2/3), so that a bigint decodes as a
 * bigint and a number as a number — the state root and the store depend on that round trip.
 */
import { decode, encode } from "cborg";
import { bigIntDecoder, bigNegIntDecoder, structBigIntEncoder } from "cborg/taglib";

const encodeOptions = { typeEncoders: { bigint: structBigIntEncoder } };
const tags: { [tag: number]: typeof bigIntDecoder } = { 2: bigIntDecoder, 3: bigNegIntDecoder };
const decodeOptions = { tags, strict: true, rejectDuplicateMapKeys: true };

export function encodeEntry(value: unknown): Uint8Array {
  return encode(value, encodeOptions);
}

export function decodeEntry(bytes: Uint8Array): unknown {
  return decode(bytes, decodeOptions);
}
