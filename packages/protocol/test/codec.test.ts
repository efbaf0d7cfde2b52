import { encode as cborgEncode, Token, Type } from "cborg";
import { describe, expect, it } from "vitest";
import {
  array,
  bigUint,
  bool,
  bytes,
  CodecError,
  type CodecErrorCode,
  DeepshardError,
  decode,
  encode,
  type Infer,
  int,
  literal,
  MAX_DEPTH,
  nullable,
  oneOf,
  optional,
  refine,
  type Schema,
  string,
  struct,
  uint,
  union,
  version,
  versioned,
} from "../src/index.ts";

const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s/g, ""), "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Runs `fn`, requires a CodecError with `code`, returns it for further checks. */
function codecError(fn: () => unknown, code: CodecErrorCode): CodecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).code).toBe(code);
    return err as CodecError;
  }
  throw new Error(`expected a CodecError ${code}, got no error`);
}

describe("canonical encoding", () => {
  // RFC 8949 Appendix A, the examples inside our profile (no floats, tags or undefined).
  const vectors: [unknown, string][] = [
    [0, "00"],
    [1, "01"],
    [23, "17"],
    [24, "1818"],
    [100, "1864"],
    [1000, "1903e8"],
    [1000000, "1a000f4240"],
    [1000000000000, "1b000000e8d4a51000"],
    [18446744073709551615n, "1bffffffffffffffff"],
    [-1, "20"],
    [-10, "29"],
    [-100, "3863"],
    [-1000, "3903e7"],
    [-18446744073709551616n, "3bffffffffffffffff"],
    [false, "f4"],
    [true, "f5"],
    [null, "f6"],
    [new Uint8Array(0), "40"],
    [hex("01020304"), "4401020304"],
    ["", "60"],
    ["a", "6161"],
    ["IETF", "6449455446"],
    ['"\\', "62225c"],
    ["\u00fc", "62c3bc"],
    ["\u6c34", "63e6b0b4"],
    ["\ud800\udd51", "64f0908591"],
    [[], "80"],
    [[1, 2, 3], "83010203"],
    [[1, [2, 3], [4, 5]], "8301820203820405"],
    [{}, "a0"],
    [{ a: 1, b: [2, 3] }, "a26161016162820203"],
    [["a", { b: "c" }], "826161a161626163"],
  ];
  for (const [value, encoded] of vectors) {
    it(`encodes ${encoded}`, () => {
      expect(toHex(encode(value))).toBe(encoded);
      expect(decode(hex(encoded))).toEqual(value);
    });
  }

  it("sorts map keys by the bytes of their encoding (RFC 8949), not length first", () => {
    // "b" (61 62) < "aa" (62 61 61) bytewise; both rules agree here, so also check one where they differ:
    expect(toHex(encode({ aa: 1, b: 2 }))).toBe("a261620262616101");
    // 24-byte key has a two-byte header (78 18), sorting after every shorter key.
    const long = "a".repeat(24);
    expect(toHex(encode({ [long]: 1, z: 2 })).startsWith("a2617a02")).toBe(true);
  });

  it("round-trips text that starts with U+FEFF, short and long", () => {
    for (const text of ["\uFEFF", "\uFEFFx", `\uFEFF${"a".repeat(100)}`, { k: "\uFEFFv" }]) {
      expect(decode(encode(text))).toEqual(text);
    }
  });

  it("decodes safe integers as numbers and larger ones as bigint", () => {
    expect(decode(hex("1b001fffffffffffff"))).toBe(Number.MAX_SAFE_INTEGER);
    expect(decode(hex("1b0020000000000000"))).toBe(2n ** 53n);
    expect(decode(hex("3b0020000000000000"))).toBe(-(2n ** 53n) - 1n);
  });

  it("encodes a bigint and the equal number to the same bytes", () => {
    expect(encode(5n)).toEqual(encode(5));
    expect(encode({ a: 2n ** 40n })).toEqual(encode({ a: 2 ** 40 }));
  });

  it("accepts Buffers and views at an offset, and returns copies of byte strings", () => {
    const backing = Buffer.from("ff4401020304ff", "hex");
    const view = backing.subarray(1, 6);
    const value = decode(view) as Uint8Array;
    expect(value).toEqual(hex("01020304"));
    backing[2] = 9;
    expect(value[0]).toBe(1);
    expect(encode(Buffer.from("0102", "hex"))).toEqual(hex("420102"));
  });

  it("keeps __proto__ as a plain key and never touches the prototype", () => {
    const bytes = hex("a1695f5f70726f746f5f5fa0"); // {"__proto__": {}}
    const value = decode(bytes) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(["__proto__"]);
    expect(encode(value)).toEqual(bytes);
  });
});

describe("decode rejects", () => {
  it("NON_CANONICAL: integers and lengths not in shortest form", () => {
    codecError(() => decode(hex("1801")), "NON_CANONICAL");
    codecError(() => decode(hex("190017")), "NON_CANONICAL");
    codecError(() => decode(hex("1a00000017")), "NON_CANONICAL");
    codecError(() => decode(hex("1b0000000000000017")), "NON_CANONICAL");
    codecError(() => decode(hex("3800")), "NON_CANONICAL");
    codecError(() => decode(hex("580101")), "NON_CANONICAL");
    codecError(() => decode(hex("78016161")), "NON_CANONICAL");
    codecError(() => decode(hex("980101")), "NON_CANONICAL");
    codecError(() => decode(hex("b8016161 01")), "NON_CANONICAL");
  });

  it("NON_CANONICAL: unsorted map keys", () => {
    codecError(() => decode(hex("a2616201616102")), "NON_CANONICAL"); // {"b":1,"a":2}
    codecError(() => decode(hex("a262616101616202")), "NON_CANONICAL"); // {"aa":1,"b":2}
  });

  it("NON_CANONICAL: indefinite lengths", () => {
    codecError(() => decode(hex("9f01ff")), "NON_CANONICAL");
    codecError(() => decode(hex("bf616101ff")), "NON_CANONICAL");
    codecError(() => decode(hex("5f4101ff")), "NON_CANONICAL");
    codecError(() => decode(hex("7f6161ff")), "NON_CANONICAL");
    codecError(() => decode(hex("ff")), "NON_CANONICAL");
  });

  it("NON_CANONICAL: text that is not valid UTF-8", () => {
    codecError(() => decode(hex("62c328")), "NON_CANONICAL");
    codecError(() => decode(hex("63eda080")), "NON_CANONICAL"); // an encoded surrogate
    codecError(() => decode(hex("62c0af")), "NON_CANONICAL"); // overlong "/"
  });

  it("TRAILING_BYTES", () => {
    const err = codecError(() => decode(hex("0000")), "TRAILING_BYTES");
    expect(err.meta).toMatchObject({ trailing: 1 });
    codecError(() => decode(hex("a0ff")), "TRAILING_BYTES");
  });

  it("DUPLICATE_KEY", () => {
    codecError(() => decode(hex("a2616101616102")), "DUPLICATE_KEY");
  });

  it("WRONG_TYPE: floats, even integral ones", () => {
    codecError(() => decode(hex("f93c00")), "WRONG_TYPE"); // 1.0 half
    codecError(() => decode(hex("fa3f800000")), "WRONG_TYPE"); // 1.0 single
    codecError(() => decode(hex("fb3ff0000000000000")), "WRONG_TYPE"); // 1.0 double
    codecError(() => decode(hex("fb3ff8000000000000")), "WRONG_TYPE"); // 1.5
    codecError(() => decode(hex("f98000")), "WRONG_TYPE"); // -0.0
    codecError(() => decode(hex("f97e00")), "WRONG_TYPE"); // NaN
    codecError(() => decode(hex("f97c00")), "WRONG_TYPE"); // Infinity
    codecError(() => decode(hex("a16161f93c00")), "WRONG_TYPE");
  });

  it("WRONG_TYPE: undefined, simple values, tags and non-text map keys", () => {
    codecError(() => decode(hex("f7")), "WRONG_TYPE");
    codecError(() => decode(hex("e0")), "WRONG_TYPE");
    codecError(() => decode(hex("f820")), "WRONG_TYPE");
    codecError(() => decode(hex("c249010000000000000000")), "WRONG_TYPE"); // bignum 2^64
    codecError(() => decode(hex("c11a514b67b0")), "WRONG_TYPE"); // epoch time
    codecError(() => decode(hex("a10101")), "WRONG_TYPE");
    codecError(() => decode(hex("a1410101")), "WRONG_TYPE");
    codecError(() => decode("00" as unknown as Uint8Array), "WRONG_TYPE");
  });

  it("TOO_LARGE: input above the limit, before decoding", () => {
    const err = codecError(() => decode(new Uint8Array(11), { maxBytes: 10 }), "TOO_LARGE");
    expect(err.meta).toMatchObject({ size: 11, maxBytes: 10 });
    expect(decode(hex("4401020304"), { maxBytes: 5 })).toEqual(hex("01020304"));
  });

  it(`TOO_LARGE: nesting deeper than ${MAX_DEPTH}`, () => {
    const nested = (depth: number, inner: string) => hex("81".repeat(depth - 1) + inner);
    expect(() => decode(nested(MAX_DEPTH, "80"))).not.toThrow();
    expect(() => decode(nested(MAX_DEPTH, "8100"))).not.toThrow();
    codecError(() => decode(nested(MAX_DEPTH + 1, "80")), "TOO_LARGE");
    codecError(() => decode(nested(MAX_DEPTH + 1, "a0")), "TOO_LARGE");
    // far deeper than the JS stack would survive in a recursive decoder
    codecError(() => decode(new Uint8Array(1 << 20).fill(0x81), { maxBytes: 1 << 20 }), "TOO_LARGE");
  });

  it("TOO_LARGE: 64-bit declared lengths", () => {
    codecError(() => decode(hex("5b0020000000000000")), "TOO_LARGE");
    codecError(() => decode(hex("9b0020000000000000")), "TOO_LARGE");
  });

  it("MALFORMED: empty, truncated, reserved and huge declared lengths (without allocating)", () => {
    codecError(() => decode(new Uint8Array(0)), "MALFORMED");
    codecError(() => decode(hex("1a0000")), "MALFORMED");
    codecError(() => decode(hex("6261")), "MALFORMED");
    codecError(() => decode(hex("82 01")), "MALFORMED");
    codecError(() => decode(hex("a1 6161")), "MALFORMED");
    codecError(() => decode(hex("1c")), "MALFORMED");
    codecError(() => decode(hex("5affffffff00")), "MALFORMED");
    codecError(() => decode(hex("7affffffff00")), "MALFORMED");
    codecError(() => decode(hex("9affffffff00")), "MALFORMED");
    codecError(() => decode(hex("baffffffff616100")), "MALFORMED");
    codecError(() => decode(hex("5b000000010000000000")), "MALFORMED");
    codecError(() => decode(hex("9b000000010000000000")), "MALFORMED");
  });

  it("errors read well and are DeepshardErrors", () => {
    const err = codecError(() => decode(hex("a2616101616102")), "DUPLICATE_KEY");
    expect(err).toBeInstanceOf(DeepshardError);
    expect(err.name).toBe("CodecError");
    expect(err.shortMessage).toBe("duplicate map key");
    expect(err.message).toContain('repeat map key "a"');
    expect(err.toJSON()).toMatchObject({ code: "DUPLICATE_KEY" });
  });
});

describe("encode rejects what decode would not give back", () => {
  it("WRONG_TYPE: floats, unsafe integers, undefined and exotic objects, with a path", () => {
    expect(codecError(() => encode({ a: [1, 1.5] }), "WRONG_TYPE").path).toBe("value.a[1]");
    codecError(() => encode(Number.NaN), "WRONG_TYPE");
    codecError(() => encode(Number.POSITIVE_INFINITY), "WRONG_TYPE");
    codecError(() => encode(2 ** 53), "WRONG_TYPE");
    codecError(() => encode(undefined), "WRONG_TYPE");
    codecError(() => encode({ a: undefined }), "WRONG_TYPE");
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    codecError(() => encode([1, , 2]), "WRONG_TYPE");
    codecError(() => encode(new Map([["a", 1]])), "WRONG_TYPE");
    codecError(() => encode(new Set([1])), "WRONG_TYPE");
    codecError(() => encode(new Date(0)), "WRONG_TYPE");
    codecError(() => encode(new Int16Array(2)), "WRONG_TYPE");
    codecError(() => encode(new Uint8ClampedArray(2)), "WRONG_TYPE");
    codecError(() => encode(new ArrayBuffer(2)), "WRONG_TYPE");
    codecError(() => encode(new (class Point {})()), "WRONG_TYPE");
    codecError(() => encode(Symbol("s")), "WRONG_TYPE");
    codecError(() => encode(() => 1), "WRONG_TYPE");
    codecError(() => encode("\ud800"), "WRONG_TYPE");
  });

  it("OUT_OF_RANGE: integers beyond 64 bits", () => {
    expect(toHex(encode(2n ** 64n - 1n))).toBe("1bffffffffffffffff");
    codecError(() => encode(2n ** 64n), "OUT_OF_RANGE");
    codecError(() => encode(-(2n ** 64n) - 1n), "OUT_OF_RANGE");
  });

  it(`TOO_LARGE: nesting deeper than ${MAX_DEPTH}`, () => {
    const nest = (depth: number): unknown => (depth === 1 ? [] : [nest(depth - 1)]);
    expect(() => encode(nest(MAX_DEPTH))).not.toThrow();
    codecError(() => encode(nest(MAX_DEPTH + 1)), "TOO_LARGE");
  });

  it("encodes -0 as 0", () => {
    expect(toHex(encode(-0))).toBe("00");
  });
});

describe("schemas", () => {
  const account = struct({
    v: version(1),
    type: literal("account"),
    name: string({ max: 8 }),
    balance: bigUint({ max: 1000n }),
    age: uint({ max: 150 }),
    delta: int({ min: -5, max: 5 }),
    key: bytes({ length: 4 }),
    note: optional(bytes({ max: 3 })),
    tags: array(string({ max: 4 }), { max: 2 }),
    parent: nullable(bytes({ length: 1 })),
    active: bool(),
    color: oneOf(["red", "blue"]),
  });
  type Account = Infer<typeof account>;
  const valid: Account = {
    v: 1,
    type: "account",
    name: "ana",
    balance: 7n,
    age: 30,
    delta: -2,
    key: hex("01020304"),
    tags: ["x"],
    parent: null,
    active: true,
    color: "red",
  };
  const parse = (value: unknown) => account.parse(value, "acct");
  const roundTrip = (value: unknown) => account.parse(decode(encode(value)), "acct");

  it("parses decoded values into their declared types", () => {
    const decoded = roundTrip(valid);
    expect(decoded).toEqual(valid);
    expect(typeof decoded.balance).toBe("bigint");
    expect(roundTrip({ ...valid, note: hex("09") }).note).toEqual(hex("09"));
  });

  it("returns fresh objects and never mutates its input", () => {
    const input = { ...valid };
    const out = parse(input);
    expect(out).not.toBe(input);
    expect(input).toEqual(valid);
  });

  it("names the path of every failure", () => {
    expect(codecError(() => parse({ ...valid, tags: ["x", "abcde"] }), "TOO_LARGE").path).toBe(
      "acct.tags[1]",
    );
    expect(codecError(() => parse({ ...valid, balance: 1001n }), "OUT_OF_RANGE").message).toContain(
      "acct.balance:",
    );
  });

  const cases: [string, unknown, CodecErrorCode, string][] = [
    ["an unknown key", { ...valid, extra: 1 }, "UNKNOWN_KEY", "acct"],
    [
      "a __proto__ key",
      Object.defineProperty({ ...valid }, "__proto__", { value: {}, enumerable: true }),
      "UNKNOWN_KEY",
      "acct",
    ],
    ["a missing key", { ...valid, age: undefined }, "MISSING_KEY", "acct"],
    ["a newer version", { ...valid, v: 2 }, "UNSUPPORTED_VERSION", "acct.v"],
    ["a version of the wrong type", { ...valid, v: "1" }, "WRONG_TYPE", "acct.v"],
    ["a wrong literal", { ...valid, type: "acount" }, "WRONG_TYPE", "acct.type"],
    ["a string for an integer", { ...valid, age: "30" }, "WRONG_TYPE", "acct.age"],
    ["a fraction for an integer", { ...valid, age: 30.5 }, "WRONG_TYPE", "acct.age"],
    ["a fraction for an amount", { ...valid, balance: 0.5 }, "WRONG_TYPE", "acct.balance"],
    ["a negative amount", { ...valid, balance: -1n }, "OUT_OF_RANGE", "acct.balance"],
    ["an amount above its range", { ...valid, balance: 1001 }, "OUT_OF_RANGE", "acct.balance"],
    ["a uint above its range", { ...valid, age: 151 }, "OUT_OF_RANGE", "acct.age"],
    ["a uint as a huge bigint", { ...valid, age: 2n ** 60n }, "OUT_OF_RANGE", "acct.age"],
    ["an int below its range", { ...valid, delta: -6 }, "OUT_OF_RANGE", "acct.delta"],
    ["bytes of the wrong length", { ...valid, key: hex("010203") }, "OUT_OF_RANGE", "acct.key"],
    ["bytes too long", { ...valid, key: hex("0102030405") }, "TOO_LARGE", "acct.key"],
    ["a string for bytes", { ...valid, key: "abcd" }, "WRONG_TYPE", "acct.key"],
    ["optional bytes too long", { ...valid, note: hex("01020304") }, "TOO_LARGE", "acct.note"],
    ["a string over its UTF-8 limit", { ...valid, name: "\u00fc".repeat(5) }, "TOO_LARGE", "acct.name"],
    ["a lone surrogate", { ...valid, name: "\udc00" }, "WRONG_TYPE", "acct.name"],
    ["too many items", { ...valid, tags: ["a", "b", "c"] }, "TOO_LARGE", "acct.tags"],
    ["a map for an array", { ...valid, tags: {} }, "WRONG_TYPE", "acct.tags"],
    ["an array for a map", [], "WRONG_TYPE", "acct"],
    ["a number for a boolean", { ...valid, active: 1 }, "WRONG_TYPE", "acct.active"],
    ["a value outside its set", { ...valid, color: "green" }, "WRONG_TYPE", "acct.color"],
    ["null where not nullable", { ...valid, key: null }, "WRONG_TYPE", "acct.key"],
  ];
  for (const [what, input, code, path] of cases) {
    it(`rejects ${what} with ${code} at ${path}`, () => {
      expect(codecError(() => parse(input), code).path).toBe(path);
    });
  }

  it("the string limit counts UTF-8 bytes, including 4-byte characters", () => {
    expect(parse({ ...valid, name: "\u00fc".repeat(4) }).name).toHaveLength(4);
    expect(parse({ ...valid, name: "\u{1f600}\u{1f600}" }).name).toHaveLength(4);
    codecError(() => parse({ ...valid, name: "\u{1f600}\u{1f600}a" }), "TOO_LARGE");
    expect(codecError(() => string({ min: 2, max: 4 }).parse("a", "s"), "OUT_OF_RANGE").path).toBe("s");
    codecError(() => string({ max: 9, pattern: /^[a-z]+$/ }).parse("aB", "s"), "WRONG_TYPE");
  });

  describe("tagged unions", () => {
    const a = struct({ v: version(1), type: literal("a"), x: uint() });
    const b = struct({ v: version(1), type: literal("b"), y: bool() });
    const ab = versioned(version(1), union("type", [a, b]));

    it("dispatch on type", () => {
      expect(ab.parse({ v: 1, type: "b", y: true }, "m")).toEqual({ v: 1, type: "b", y: true });
      expect(codecError(() => ab.parse({ v: 1, type: "b", x: 1 }, "m"), "MISSING_KEY").path).toBe("m");
    });

    it("UNKNOWN_TYPE for a type nobody knows, MISSING_KEY without one", () => {
      expect(codecError(() => ab.parse({ v: 1, type: "c" }, "m"), "UNKNOWN_TYPE").path).toBe("m.type");
      codecError(() => ab.parse({ v: 1, type: 1 }, "m"), "UNKNOWN_TYPE");
      codecError(() => ab.parse({ v: 1 }, "m"), "MISSING_KEY");
    });

    it("reports the version before the type, so newer messages read as UNSUPPORTED_VERSION", () => {
      codecError(() => ab.parse({ v: 2, type: "c" }, "m"), "UNSUPPORTED_VERSION");
      codecError(() => struct({ v: version(1) }).parse({ v: 2, newKey: 1 }, "m"), "UNSUPPORTED_VERSION");
    });
  });

  it("refine adds checks after parsing", () => {
    const even: Schema<number> = refine(uint(), "even", (n, path) => {
      if (n % 2) throw new CodecError("OUT_OF_RANGE", "must be even", { path });
    });
    expect(even.parse(4, "n")).toBe(4);
    expect(codecError(() => even.parse(3, "n"), "OUT_OF_RANGE").message).toBe("n: must be even");
  });

  it("a float token where an integer is expected fails in decode, before the schema", () => {
    const floats = cborgEncode(
      { n: 1 },
      { typeEncoders: { number: (n: number) => [new Token(Type.float, n)] } },
    );
    expect(toHex(floats)).toContain("f93c00");
    codecError(() => struct({ n: uint() }).parse(decode(floats), "m"), "WRONG_TYPE");
  });
});
