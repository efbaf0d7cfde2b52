/**
 * A small typed schema toolkit for decoded messages: each schema checks a value from `decode`
 * (or one a program is about to encode), returns it in its declared TypeScript type, and throws a
 * CodecError naming the path of the first problem (e.g. `tx.payload.amount`).
 *
 * `parse` never mutates its input and returns fresh containers holding only the declared keys.
 */
import { CodecError, isWellFormed } from "./codec.ts";

export interface Schema<T> {
  /** What the schema accepts, for error messages. */
  readonly expected: string;
  parse(input: unknown, path: string): T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

/** A struct field that may be absent (never present with `undefined` in a decoded value). */
export interface OptionalSchema<T> extends Schema<T> {
  readonly optional: true;
}

export interface LiteralSchema<T extends string | number | boolean> extends Schema<T> {
  readonly value: T;
}

export type Shape = Record<string, Schema<unknown>>;

type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends OptionalSchema<unknown> ? K : never;
}[keyof S];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type InferShape<S extends Shape> = Simplify<
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> }
>;

export interface StructSchema<S extends Shape> extends Schema<InferShape<S>> {
  readonly shape: S;
}

function fail(code: ConstructorParameters<typeof CodecError>[0], path: string, message: string): never {
  throw new CodecError(code, message, { path });
}

function describe(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "array";
  if (input instanceof Uint8Array) return "bytes";
  if (typeof input === "number" && !Number.isInteger(input)) return "non-integer number";
  return typeof input;
}

function wrongType(path: string, expected: string, input: unknown): never {
  return fail("WRONG_TYPE", path, `expected ${expected}, got ${describe(input)}`);
}

export interface UintOptions {
  min?: number;
  max?: number;
}

/** An unsigned integer as a `number` (safe integers only; use `bigUint` for amounts). */
export function uint(options: UintOptions = {}): Schema<number> {
  return int({ min: options.min ?? 0, max: options.max ?? Number.MAX_SAFE_INTEGER });
}

/** A signed integer as a `number`, within [min, max] (both safe integers). */
export function int(options: { min: number; max: number }): Schema<number> {
  const { min, max } = options;
  const expected = `integer in [${min}, ${max}]`;
  return {
    expected,
    parse(input, path) {
      let n: number;
      if (typeof input === "number" && Number.isInteger(input)) n = input;
      else if (typeof input === "bigint") {
        if (input > BigInt(max) || input < BigInt(min))
          fail("OUT_OF_RANGE", path, `${input} is not an ${expected}`);
        n = Number(input);
      } else return wrongType(path, "an integer", input);
      if (n < min || n > max) fail("OUT_OF_RANGE", path, `${n} is not an ${expected}`);
      return n;
    },
  };
}

/** An unsigned integer as a `bigint` in [min, max]; amounts, nonces and fees use it. */
export function bigUint(options: { min?: bigint; max: bigint }): Schema<bigint> {
  const min = options.min ?? 0n;
  const { max } = options;
  const expected = `integer in [${min}, ${max}]`;
  return {
    expected,
    parse(input, path) {
      let n: bigint;
      if (typeof input === "bigint") n = input;
      else if (typeof input === "number" && Number.isSafeInteger(input)) n = BigInt(input);
      else return wrongType(path, "an integer", input);
      if (n < min || n > max) fail("OUT_OF_RANGE", path, `${n} is not an ${expected}`);
      return n;
    },
  };
}

export function bool(): Schema<boolean> {
  return {
    expected: "boolean",
    parse(input, path) {
      return typeof input === "boolean" ? input : wrongType(path, "a boolean", input);
    },
  };
}

export type BytesOptions = { length: number } | { min?: number; max: number };

/** A byte string of an exact length or of at most `max` bytes. */
export function bytes(options: BytesOptions): Schema<Uint8Array> {
  const min = "length" in options ? options.length : (options.min ?? 0);
  const max = "length" in options ? options.length : options.max;
  const expected = min === max ? `${max} bytes` : `${min}..${max} bytes`;
  return {
    expected,
    parse(input, path) {
      if (!(input instanceof Uint8Array)) return wrongType(path, expected, input);
      if (input.length > max) fail("TOO_LARGE", path, `expected ${expected}, got ${input.length}`);
      if (input.length < min) fail("OUT_OF_RANGE", path, `expected ${expected}, got ${input.length}`);
      return input;
    },
  };
}

export interface StringOptions {
  /** Maximum length in UTF-8 bytes. */
  max: number;
  min?: number;
  /** Must match the whole string. */
  pattern?: RegExp;
}

export function string(options: StringOptions): Schema<string> {
  const { max, pattern } = options;
  const min = options.min ?? 0;
  const expected = `string of ${min}..${max} UTF-8 bytes${pattern ? ` matching ${pattern}` : ""}`;
  return {
    expected,
    parse(input, path) {
      if (typeof input !== "string") return wrongType(path, "a string", input);
      if (!isWellFormed(input)) fail("WRONG_TYPE", path, "string is not well-formed UTF-16");
      // UTF-8 takes at most 3 bytes per UTF-16 unit, so short strings skip the byte count.
      const size = input.length * 3 <= max && input.length >= min ? input.length : utf8Length(input);
      if (size > max) fail("TOO_LARGE", path, `expected ${expected}, got ${size} bytes`);
      if (size < min) fail("OUT_OF_RANGE", path, `expected ${expected}, got ${size} bytes`);
      if (pattern && !pattern.test(input)) fail("WRONG_TYPE", path, `expected ${expected}`);
      return input;
    },
  };
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4; // a well-formed string has the low surrogate next
      i++;
    } else n += 3;
  }
  return n;
}

export function literal<const T extends string | number | boolean>(value: T): LiteralSchema<T> {
  const expected = JSON.stringify(value);
  return {
    expected,
    value,
    parse(input, path) {
      return input === value ? value : fail("WRONG_TYPE", path, `expected ${expected}, got ${show(input)}`);
    },
  };
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(values: readonly T[]): Schema<T> {
  const set = new Set<unknown>(values);
  const expected = `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`;
  return {
    expected,
    parse(input, path) {
      return set.has(input)
        ? (input as T)
        : fail("WRONG_TYPE", path, `expected ${expected}, got ${show(input)}`);
    },
  };
}

function show(input: unknown): string {
  return typeof input === "string" || typeof input === "number" ? JSON.stringify(input) : describe(input);
}

/** The `v` field: an integer that must equal `supported`, else UNSUPPORTED_VERSION. */
export function version<const N extends number>(supported: N): LiteralSchema<N> {
  return {
    expected: `version ${supported}`,
    value: supported,
    parse(input, path) {
      if (typeof input !== "number" && typeof input !== "bigint")
        return wrongType(path, "a version number", input);
      if (input !== supported)
        fail("UNSUPPORTED_VERSION", path, `version ${input} is not supported (${supported})`);
      return supported;
    },
  };
}

export function optional<T>(schema: Schema<T>): OptionalSchema<T> {
  return {
    expected: `optional ${schema.expected}`,
    optional: true,
    parse: (input, path) => schema.parse(input, path),
  };
}

export function nullable<T>(schema: Schema<T>): Schema<T | null> {
  return {
    expected: `${schema.expected} or null`,
    parse: (input, path) => (input === null ? null : schema.parse(input, path)),
  };
}

export interface ArrayOptions {
  max: number;
  min?: number;
}

export function array<T>(item: Schema<T>, options: ArrayOptions): Schema<T[]> {
  const { max } = options;
  const min = options.min ?? 0;
  const expected = `array of ${min}..${max} × ${item.expected}`;
  return {
    expected,
    parse(input, path) {
      if (!Array.isArray(input)) return wrongType(path, "an array", input);
      if (input.length > max) fail("TOO_LARGE", path, `expected at most ${max} items, got ${input.length}`);
      if (input.length < min)
        fail("OUT_OF_RANGE", path, `expected at least ${min} items, got ${input.length}`);
      const out = new Array<T>(input.length);
      for (let i = 0; i < input.length; i++) out[i] = item.parse(input[i], `${path}[${i}]`);
      return out;
    },
  };
}

function isPlainObject(input: unknown): input is Record<string, unknown> {
  if (typeof input !== "object" || input === null) return false;
  const proto = Object.getPrototypeOf(input);
  return proto === Object.prototype || proto === null;
}

/**
 * A map with exactly the keys of `shape`: a missing required key is MISSING_KEY, any other key
 * UNKNOWN_KEY. Fields are checked in shape order, so a `v` first reports UNSUPPORTED_VERSION before
 * a newer version's keys look unknown.
 */
export function struct<const S extends Shape>(shape: S): StructSchema<S> {
  const fields = Object.entries(shape).map(
    ([key, schema]) => [key, schema, (schema as Partial<OptionalSchema<unknown>>).optional === true] as const,
  );
  return {
    expected: "map",
    shape,
    parse(input, path) {
      if (!isPlainObject(input)) return wrongType(path, "a map", input);
      const out: Record<string, unknown> = {};
      let present = 0;
      for (const [key, schema, isOptional] of fields) {
        const value = Object.hasOwn(input, key) ? input[key] : undefined;
        if (value === undefined) {
          if (!isOptional) fail("MISSING_KEY", path, `missing key "${key}"`);
          if (Object.hasOwn(input, key)) present++;
          continue;
        }
        present++;
        out[key] = schema.parse(value, `${path}.${key}`);
      }
      const keys = Object.keys(input);
      if (keys.length !== present) {
        const unknown = keys.find((k) => !Object.hasOwn(shape, k));
        fail("UNKNOWN_KEY", path, `unknown key ${JSON.stringify(unknown)}`);
      }
      return out as InferShape<S>;
    },
  };
}

type TaggedStruct<K extends string> = Schema<unknown> & { readonly shape: Record<K, LiteralSchema<string>> };

/**
 * A union of structs told apart by the literal in their `key` field (`type` in every message):
 * an unknown tag is UNKNOWN_TYPE.
 */
export function union<const K extends string, const V extends readonly TaggedStruct<K>[]>(
  key: K,
  variants: V,
): Schema<Infer<V[number]>> {
  const byTag = new Map<unknown, Schema<unknown>>();
  for (const variant of variants) byTag.set(variant.shape[key]!.value, variant);
  const expected = `${key} ${[...byTag.keys()].map((t) => JSON.stringify(t)).join(" | ")}`;
  return {
    expected,
    parse(input, path) {
      if (!isPlainObject(input)) return wrongType(path, "a map", input);
      if (!Object.hasOwn(input, key)) fail("MISSING_KEY", path, `missing key "${key}"`);
      const variant = byTag.get(input[key]);
      if (!variant) fail("UNKNOWN_TYPE", `${path}.${key}`, `unknown ${key} ${show(input[key])}`);
      return variant.parse(input, path) as Infer<V[number]>;
    },
  };
}

/** Checks the `v` field of a map before `inner` looks at anything else (a newer version may use new types). */
export function versioned<T>(v: Schema<unknown>, inner: Schema<T>): Schema<T> {
  return {
    expected: inner.expected,
    parse(input, path) {
      if (isPlainObject(input) && Object.hasOwn(input, "v")) v.parse(input.v, `${path}.v`);
      return inner.parse(input, path);
    },
  };
}

/** Adds a check over a parsed value; `check` throws a CodecError when it fails. */
export function refine<T>(
  schema: Schema<T>,
  expected: string,
  check: (value: T, path: string) => void,
): Schema<T> {
  return {
    expected: `${schema.expected}, ${expected}`,
    parse(input, path) {
      const value = schema.parse(input, path);
      check(value, path);
      return value;
    },
  };
}

/** Compares byte strings in lexicographic order (for "sorted by key" rules). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
