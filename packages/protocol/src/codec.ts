/**
 * The canonical encoding of every Deepshard message: a strict profile of deterministic CBOR
 * (RFC 8949 §4.2.1, "core deterministic encoding"), so that one value has exactly one byte string
 * and hashes and signatures are well defined.
 *
 * The profile, enforced on encode and on decode:
 * - Data model: null, true, false, integers, byte strings, UTF-8 text strings, arrays, and maps
 *   whose keys are text strings. Nothing else: no floats (not even 1.0), no undefined, no other
 *   simple values, no tags (so no bignums: integers lie in [-2^64, 2^64 - 1]).
 * - Integers and lengths use the shortest form; definite lengths only (no indefinite items).
 * - Map keys are unique and sorted by the bytewise order of their encodings (RFC 8949, not the
 *   length-first order of RFC 7049).
 * - Text strings are well-formed UTF-8 (encode rejects lone surrogates).
 * - Exactly one data item: trailing bytes are rejected.
 * - At most MAX_DEPTH nested arrays and maps (bounds the decoder's recursion).
 * - The input size is checked against a limit before any decoding, and no declared length is
 *   trusted: byte and text strings are checked against the bytes present before they are copied,
 *   arrays grow only as items are actually decoded.
 *
 * Decoding checks canonicality the simple, total way: after a strict decode it re-encodes the value
 * and requires the very same bytes. Since encode is a function, the accepted byte strings are
 * exactly its image: every non-canonical form (key order, widths, invalid UTF-8 …) is rejected.
 *
 * Integers decode as `number` when they are safe integers and as `bigint` otherwise; schemas
 * (schema.ts) turn them into the type a field declares, e.g. bigint for amounts.
 */

import { Buffer } from "node:buffer";
import { encode as cborEncode, decodeFirst, rfc8949EncodeOptions, type Token, Tokenizer, Type } from "cborg";
import { DeepshardError, type DeepshardErrorOptions } from "./errors.ts";

export type CodecErrorCode =
  /** A valid CBOR item that is not the canonical encoding of its value. */
  | "NON_CANONICAL"
  /** Bytes left after the one data item. */
  | "TRAILING_BYTES"
  | "DUPLICATE_KEY"
  | "UNKNOWN_KEY"
  | "MISSING_KEY"
  /** A value of a type the profile or the schema does not allow here (float, tag, string for int …). */
  | "WRONG_TYPE"
  /** An integer outside its range, or a length below its minimum. */
  | "OUT_OF_RANGE"
  /** Input above its size limit, nesting above MAX_DEPTH, or a string/bytes/array above its maximum. */
  | "TOO_LARGE"
  /** A `type` discriminator no schema knows. */
  | "UNKNOWN_TYPE"
  | "UNSUPPORTED_VERSION"
  /** Not CBOR at all: truncated, reserved bytes, unexpected break. */
  | "MALFORMED";

export interface CodecErrorOptions extends DeepshardErrorOptions {
  /** Where in the value the error is, e.g. `tx.payload.amount`. */
  path?: string | undefined;
}

export class CodecError extends DeepshardError<CodecErrorCode> {
  override name = "CodecError";
  readonly path: string | undefined;

  constructor(code: CodecErrorCode, shortMessage: string, options: CodecErrorOptions = {}) {
    const { path, ...rest } = options;
    super(code, path ? `${path}: ${shortMessage}` : shortMessage, {
      ...rest,
      meta: { ...rest.meta, ...(path ? { path } : {}) },
    });
    this.path = path;
  }
}

/** A value of the profile's data model. */
export type CborValue = null | boolean | number | bigint | string | Uint8Array | CborValue[] | CborMap;
export interface CborMap {
  [key: string]: CborValue;
}

/** Nesting limit of arrays and maps; the deepest message (a sync response) nests 9 levels. */
export const MAX_DEPTH = 16;
/** Input limit of `decode` when the caller gives none. Messages pass their own, smaller or larger. */
export const DEFAULT_MAX_BYTES = 1 << 20;

const U64_MAX = 2n ** 64n - 1n;
const NEG_MIN = -(2n ** 64n);

export interface DecodeOptions {
  /** Inputs longer than this are rejected with TOO_LARGE before decoding. */
  maxBytes?: number;
}

/** Encodes `value` canonically; throws CodecError when it lies outside the profile. */
export function encode(value: unknown): Uint8Array {
  checkProfile(value, "value", 0);
  return cborEncode(value, rfc8949EncodeOptions);
}

/** Decodes exactly one canonical data item; throws CodecError for anything else. */
export function decode(bytes: Uint8Array, options: DecodeOptions = {}): CborValue {
  if (!(bytes instanceof Uint8Array)) throw new CodecError("WRONG_TYPE", "input must be a Uint8Array");
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (bytes.length > maxBytes) {
    throw new CodecError("TOO_LARGE", `input of ${bytes.length} bytes exceeds the limit of ${maxBytes}`, {
      meta: { size: bytes.length, maxBytes },
    });
  }
  if (bytes.length === 0) throw new CodecError("MALFORMED", "empty input");
  // A plain Uint8Array view keeps cborg off Buffer's slice semantics (Buffer.slice does not copy).
  const data =
    Object.getPrototypeOf(bytes) === Uint8Array.prototype
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let value: CborValue;
  let rest: Uint8Array;
  try {
    [value, rest] = decodeFirst(data, { ...DECODE_OPTIONS, tokenizer: new ProfileTokenizer(data) });
  } catch (err) {
    throw toCodecError(err);
  }
  if (rest.length > 0) {
    throw new CodecError("TRAILING_BYTES", `${rest.length} bytes after the data item`, {
      meta: { trailing: rest.length },
    });
  }
  let again: Uint8Array;
  try {
    again = cborEncode(value, rfc8949EncodeOptions);
  } catch (err) {
    throw new CodecError("NON_CANONICAL", "decoded value cannot be re-encoded", { cause: err });
  }
  if (!sameBytes(again, data)) {
    throw new CodecError("NON_CANONICAL", "not the canonical encoding of its value", {
      details: "map keys must be sorted bytewise, strings valid UTF-8, and integers in shortest form",
    });
  }
  return value;
}

const DECODE_OPTIONS = {
  strict: true,
  rejectDuplicateMapKeys: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowBigInt: true,
  useMaps: false,
} as const;

/**
 * Tracks nesting as tokens stream by (each open container and how many items it still expects),
 * so deep inputs fail before cborg's recursive decoder overflows the stack; also refuses floats,
 * which cborg would otherwise hand back as numbers indistinguishable from integers.
 */
/** Keeps a leading U+FEFF: cborg's TextDecoder drops it, so such a string would not round-trip. */
const UTF8_KEEPING_BOM = new TextDecoder("utf-8", { ignoreBOM: true });

class ProfileTokenizer extends Tokenizer {
  private readonly remaining: number[] = [];
  private readonly bytes: Uint8Array;

  constructor(data: Uint8Array) {
    super(data, DECODE_OPTIONS);
    this.bytes = data;
  }

  override next(): Token {
    const token = super.next();
    if (token.type === Type.string) this.keepBom(token);
    const open = this.remaining;
    if (open.length > 0) open[open.length - 1]! -= 1;
    const type = token.type;
    if (type === Type.float) throw new CodecError("WRONG_TYPE", "floats are not allowed");
    const isArray = type === Type.array;
    if (isArray || type === Type.map) {
      if (open.length >= MAX_DEPTH) {
        throw new CodecError("TOO_LARGE", `nesting deeper than ${MAX_DEPTH} arrays and maps`);
      }
      const children = isArray ? (token.value as number) : (token.value as number) * 2;
      if (children > 0) {
        open.push(children);
        return token;
      }
    }
    while (open.length > 0 && open[open.length - 1] === 0) open.pop();
    return token;
  }

  /** Re-reads a string token whose bytes start with EF BB BF (the only ones cborg decodes wrongly). */
  private keepBom(token: Token): void {
    const end = this.pos();
    const start = end - token.encodedLength!; // set on every token the tokenizer reads
    const info = this.bytes[start]! & 0x1f;
    const content = start + (info < 24 ? 1 : 1 + 2 ** (info - 24));
    const b = this.bytes;
    if (b[content] === 0xef && b[content + 1] === 0xbb && b[content + 2] === 0xbf) {
      token.value = UTF8_KEEPING_BOM.decode(b.subarray(content, end));
    }
  }
}

const CBORG_ERRORS: [RegExp, CodecErrorCode, string][] = [
  [/more bytes than necessary|indefinite length/, "NON_CANONICAL", "not canonical CBOR"],
  [/repeat map key/, "DUPLICATE_KEY", "duplicate map key"],
  [
    /non-string keys|undefined values|simple values|tag not supported|NaN|Infinity/,
    "WRONG_TYPE",
    "CBOR item outside the profile",
  ],
  [/64-bit integer .* lengths/, "TOO_LARGE", "length beyond any limit"],
];

function toCodecError(err: unknown): CodecError {
  if (err instanceof CodecError) return err;
  const details = err instanceof Error ? err.message : String(err);
  const [, code, short] = CBORG_ERRORS.find(([re]) => re.test(details)) ?? [
    /$/,
    "MALFORMED",
    "malformed CBOR",
  ];
  return new CodecError(code, short, { details, cause: err });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Rejects, before cborg sees it, anything that would not decode back to an equal value. */
function checkProfile(value: unknown, path: string, depth: number): void {
  switch (typeof value) {
    case "boolean":
      return;
    case "number":
      if (!Number.isSafeInteger(value)) {
        throw new CodecError("WRONG_TYPE", `expected a safe integer, got ${value}`, { path });
      }
      return;
    case "bigint":
      if (value > U64_MAX || value < NEG_MIN) {
        throw new CodecError("OUT_OF_RANGE", "integer outside [-2^64, 2^64 - 1]", { path });
      }
      return;
    case "string":
      if (!isWellFormed(value))
        throw new CodecError("WRONG_TYPE", "string is not well-formed UTF-16", { path });
      return;
    case "object": {
      if (value === null || value instanceof Uint8Array) {
        if (value !== null && !isByteArray(value)) {
          throw new CodecError("WRONG_TYPE", "only Uint8Array (or Buffer) encodes as bytes", { path });
        }
        return;
      }
      if (depth >= MAX_DEPTH) {
        throw new CodecError("TOO_LARGE", `nesting deeper than ${MAX_DEPTH} arrays and maps`, { path });
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) checkProfile(value[i], `${path}[${i}]`, depth + 1);
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new CodecError("WRONG_TYPE", `cannot encode ${proto?.constructor?.name ?? "object"}`, { path });
      }
      for (const key of Object.keys(value)) {
        checkProfile((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1);
      }
      return;
    }
    default:
      throw new CodecError("WRONG_TYPE", `cannot encode ${typeof value}`, { path });
  }
}

/** False for strings with lone surrogates, which UTF-8 cannot carry (ES2024 `isWellFormed`). */
export function isWellFormed(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

function isByteArray(value: Uint8Array): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Uint8Array.prototype || proto === Buffer.prototype;
}
