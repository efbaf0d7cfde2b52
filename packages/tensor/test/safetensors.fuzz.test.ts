import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MAX_HEADER_BYTES,
  parseSafetensors,
  SafetensorsError,
  SafetensorsFile,
  serializeSafetensors,
} from "../src/safetensors.ts";

const fixture = join(import.meta.dirname, "fixtures", "safetensors-dtypes", "all-dtypes.safetensors");
const runs = Number(process.env.FUZZ_RUNS ?? 300);

/** A file image with `header` (object or raw text) and `dataBytes` of data, or an explicit length prefix. */
function image(header: unknown, dataBytes: number, lengthPrefix?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, lengthPrefix ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof SafetensorsError) return err.code;
    throw err;
  }
  return "OK";
}

const t = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

describe("header validation names the problem", () => {
  const cases: [string, Uint8Array, string][] = [
    ["empty file", new Uint8Array(0), "TRUNCATED"],
    ["7-byte file", new Uint8Array(7), "TRUNCATED"],
    ["length beyond the file", image({}, 0, 1000n), "HEADER_BEYOND_FILE"],
    ["length over 100 MB", image({}, 0, BigInt(MAX_HEADER_BYTES + 1)), "HEADER_TOO_LARGE"],
    ["length 2^64 - 1", image({}, 0, 2n ** 64n - 1n), "HEADER_TOO_LARGE"],
    [
      "invalid UTF-8",
      (() => {
        const img = image("{}  ", 0);
        img[10] = 0xff;
        return img;
      })(),
      "HEADER_NOT_UTF8",
    ],
    ["not JSON", image("{", 0), "HEADER_NOT_JSON"],
    ["JSON array", image("[]", 0), "HEADER_NOT_OBJECT"],
    ["JSON null", image("null", 0), "HEADER_NOT_OBJECT"],
    ["metadata not an object", image({ __metadata__: "x" }, 0), "INVALID_METADATA"],
    ["metadata value not a string", image({ __metadata__: { a: 1 } }, 0), "INVALID_METADATA"],
    ["tensor not an object", image({ a: 3 }, 0), "INVALID_TENSOR_INFO"],
    ["dtype missing", image({ a: { shape: [1], data_offsets: [0, 4] } }, 4), "INVALID_TENSOR_INFO"],
    ["unknown dtype", image({ a: t("F4", [1], [0, 1]) }, 1), "UNKNOWN_DTYPE"],
    ["inherited dtype name", image({ a: t("toString", [1], [0, 1]) }, 1), "UNKNOWN_DTYPE"],
    ["negative dim", image({ a: t("U8", [-1], [0, 0]) }, 0), "INVALID_SHAPE"],
    ["fractional dim", image({ a: t("U8", [1.5], [0, 1]) }, 1), "INVALID_SHAPE"],
    ["string dim", image({ a: t("U8", ["1"], [0, 1]) }, 1), "INVALID_SHAPE"],
    ["shape not a list", image({ a: t("U8", 1, [0, 1]) }, 1), "INVALID_SHAPE"],
    ["offsets reversed", image({ a: t("U8", [0], [1, 0]) }, 1), "INVALID_OFFSETS"],
    ["three offsets", image({ a: t("U8", [1], [0, 1, 2]) }, 1), "INVALID_OFFSETS"],
    ["offset beyond 2^53", image({ a: t("U8", [1], [0, 2 ** 60]) }, 1), "INVALID_OFFSETS"],
    ["shape × dtype ≠ length", image({ a: t("F32", [2], [0, 4]) }, 4), "SIZE_MISMATCH"],
    ["element count overflows", image({ a: t("F64", [2 ** 40, 2 ** 40], [0, 8]) }, 8), "SIZE_MISMATCH"],
    ["gap before a tensor", image({ a: t("U8", [1], [1, 2]) }, 2), "NOT_CONTIGUOUS"],
    ["overlap", image({ a: t("U8", [2], [0, 2]), b: t("U8", [1], [1, 2]) }, 2), "NOT_CONTIGUOUS"],
    [
      "shape nested 100000 deep",
      image(`{"a":{"dtype":"U8","shape":${"[".repeat(1e5)}${"]".repeat(1e5)},"data_offsets":[0,0]}}`, 0),
      "INVALID_SHAPE",
    ],
    ["tensors past the data area", image({ a: t("U8", [4], [0, 4]) }, 2), "DATA_AREA_MISMATCH"],
    ["trailing bytes after the tensors", image({ a: t("U8", [1], [0, 1]) }, 2), "DATA_AREA_MISMATCH"],
  ];
  for (const [what, bytes, code] of cases) {
    it(`${what} → ${code}`, () => {
      expect(codeOf(() => parseSafetensors(bytes))).toBe(code);
    });
  }

  it("accepts __proto__ as a tensor or metadata name without touching prototypes", () => {
    const bytes = image(
      `{"__metadata__":{"__proto__":"m"},"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`,
      1,
    );
    const st = parseSafetensors(bytes);
    expect(Object.getOwnPropertyDescriptor(st.metadata, "__proto__")?.value).toBe("m");
    expect(Object.getPrototypeOf(st.metadata)).toBe(Object.prototype);
    expect(st.read("__proto__").shape).toEqual([1]);
  });

  it("accepts empty tensors sharing an offset, and a header padded with spaces", () => {
    const st = parseSafetensors(image(`{"e":${JSON.stringify(t("F32", [0, 3], [0, 0]))}}      `, 0));
    expect(st.read("e").data.length).toBe(0);
  });

  it("names the tensor in the message", () => {
    try {
      parseSafetensors(image({ "model.embed": t("F32", [2], [0, 4]) }, 4));
    } catch (err) {
      expect((err as SafetensorsError).shortMessage).toContain("model.embed");
      expect((err as SafetensorsError).meta.tensor).toBe("model.embed");
      return;
    }
    throw new Error("expected a SafetensorsError");
  });
});

describe("hostile files on disk", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "deepshard-stfuzz-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses a huge header length before allocating it, with the path in meta", async () => {
    const path = join(dir, "huge.safetensors");
    await writeFile(path, image({}, 0, BigInt(MAX_HEADER_BYTES)));
    const err = await SafetensorsFile.open(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe("HEADER_BEYOND_FILE");
    expect((err as SafetensorsError).meta.path).toBe(path);
  });

  it("a missing file is an IO error", async () => {
    const err = await SafetensorsFile.open(join(dir, "nope.safetensors")).catch((e: unknown) => e);
    expect((err as SafetensorsError).code).toBe("IO");
  });

  it("every truncation of a valid file is rejected", async () => {
    const bytes = new Uint8Array(await readFile(fixture));
    for (let n = 0; n < bytes.length; n += 7) {
      expect(codeOf(() => parseSafetensors(bytes.subarray(0, n)))).not.toBe("OK");
    }
    const path = join(dir, "cut.safetensors");
    await writeFile(path, bytes.subarray(0, bytes.length - 1));
    const err = await SafetensorsFile.open(path).catch((e: unknown) => e);
    expect((err as SafetensorsError).code).toBe("DATA_AREA_MISMATCH");
  });
});

describe("fuzzed headers only ever give SafetensorsError", () => {
  const valid = new Uint8Array(
    serializeSafetensors(
      [
        { name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array(4) },
        { name: "b", dtype: "BF16", shape: [3], data: new Uint16Array(3) },
        { name: "i", dtype: "I64", shape: [1], data: new BigInt64Array(1) },
      ],
      { k: "v" },
    ),
  );

  const check = (bytes: Uint8Array) => {
    try {
      const st = parseSafetensors(bytes);
      for (const name of st.tensors.keys()) st.readF32(name);
    } catch (err) {
      if (!(err instanceof SafetensorsError)) throw err;
    }
  };

  it("byte mutations of a valid file", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (edits) => {
          const bytes = valid.slice();
          for (const [at, b] of edits) bytes[at] = b;
          check(bytes);
        },
      ),
      { numRuns: runs },
    );
  });

  it("truncated and extended files", () => {
    fc.assert(
      fc.property(fc.nat(valid.length + 16), fc.uint8Array({ maxLength: 16 }), (cut, tail) => {
        const bytes = new Uint8Array(cut + tail.length);
        bytes.set(valid.subarray(0, Math.min(cut, valid.length)));
        bytes.set(tail, cut);
        check(bytes);
      }),
      { numRuns: runs },
    );
  });

  it("arbitrary JSON headers over arbitrary data", () => {
    const dim = fc.oneof(fc.nat(8), fc.integer(), fc.double(), fc.string(), fc.constant(2 ** 53));
    const info = fc.record(
      {
        dtype: fc.oneof(fc.constantFrom("F32", "U8", "BF16", "I64", "F8_E4M3", "BOOL", "X"), fc.string()),
        shape: fc.oneof(fc.array(dim, { maxLength: 4 }), fc.jsonValue()),
        data_offsets: fc.oneof(
          fc.tuple(fc.nat(64), fc.nat(64)),
          fc.array(fc.integer(), { maxLength: 3 }),
          fc.jsonValue(),
        ),
      },
      { requiredKeys: [] },
    );
    const header = fc.dictionary(
      fc.oneof(fc.string(), fc.constant("__metadata__"), fc.constant("__proto__")),
      fc.oneof(info, fc.jsonValue(), fc.dictionary(fc.string(), fc.string())),
      { maxKeys: 5 },
    );
    fc.assert(
      fc.property(header, fc.nat(64), fc.boolean(), (h, dataBytes, lie) => {
        check(image(h, dataBytes, lie ? BigInt(dataBytes * 3) : undefined));
      }),
      { numRuns: runs },
    );
  });

  it("arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => check(bytes)),
      { numRuns: runs },
    );
  });
});
