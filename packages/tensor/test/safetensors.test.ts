import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DTYPE_BYTES,
  DTYPES,
  type DType,
  float32ToBF16Bits,
  float32ToF16Bits,
  fromFloat32,
  INDEX_FILE,
  openCheckpoint,
  parseSafetensors,
  SafetensorsError,
  SafetensorsFile,
  serializeSafetensors,
  type TensorEntry,
  toFloat32,
  writeCheckpoint,
  writeSafetensors,
} from "../src/safetensors.ts";

const fixtureDir = join(import.meta.dirname, "fixtures", "safetensors-dtypes");
const fixture = join(fixtureDir, "all-dtypes.safetensors");

interface Expected {
  dtype: string;
  shape: number[];
  values: (number | string)[];
}

const torchToDType: Record<string, DType> = {
  "torch.float32": "F32",
  "torch.float16": "F16",
  "torch.bfloat16": "BF16",
  "torch.float64": "F64",
  "torch.int8": "I8",
  "torch.uint8": "U8",
  "torch.int16": "I16",
  "torch.int32": "I32",
  "torch.int64": "I64",
  "torch.bool": "BOOL",
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-st-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectCode(
  promise: Promise<unknown> | (() => unknown),
  code: string,
): Promise<SafetensorsError> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (err) {
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe(code);
    return err as SafetensorsError;
  }
  throw new Error(`expected SafetensorsError ${code}`);
}

describe("reference fixture (written by the Python safetensors library)", () => {
  it("reads every tensor with the dtype, shape and values expected.json states", async () => {
    const expected = JSON.parse(await readFile(join(fixtureDir, "expected.json"), "utf8")) as Record<
      string,
      Expected
    >;
    const file = await SafetensorsFile.open(fixture);
    try {
      expect(file.metadata).toEqual({ note: "deepshard fixture", format: "pt" });
      expect([...file.tensors.keys()].sort()).toEqual(Object.keys(expected).sort());
      for (const [name, want] of Object.entries(expected)) {
        const t = await file.read(name);
        expect(t.dtype, name).toBe(torchToDType[want.dtype]);
        expect(t.shape, name).toEqual(want.shape);
        if (t.dtype === "I64") {
          // The reference states int64 values as strings: they are beyond 2^53.
          expect([...t.data].map(String), name).toEqual(want.values);
          continue;
        }
        // expected.json holds the values as float32 (torch `.float()`), which is what readF32 returns.
        const f32 = await file.readF32(name);
        expect(f32.length, name).toBe(want.values.length);
        want.values.forEach((v, i) => {
          expect(Object.is(f32[i], v) || f32[i] === v, `${name}[${i}] = ${f32[i]} vs ${v}`).toBe(true);
        });
      }
      // f64 keeps full precision in its own dtype.
      expect((await file.read("f64")).data[0]).toBe(Math.PI);
    } finally {
      await file.close();
    }
  });

  it("parses the same bytes in memory, and re-serializing reproduces the file byte for byte", async () => {
    const bytes = new Uint8Array(await readFile(fixture));
    const st = parseSafetensors(bytes);
    const file = await SafetensorsFile.open(fixture);
    try {
      for (const name of st.tensors.keys()) {
        expect(st.read(name)).toEqual(await file.read(name));
        expect(st.readF32(name)).toEqual(await file.readF32(name));
      }
    } finally {
      await file.close();
    }
    // Our writer pads the header with spaces to 8 bytes as the reference does; keep its tensor order.
    const order = [...st.tensors.values()].sort((a, b) => a.byteOffset - b.byteOffset);
    const again = serializeSafetensors(
      order.map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape, data: st.read(i.name).data })),
      st.metadata,
    );
    const reparsed = parseSafetensors(again);
    for (const name of st.tensors.keys()) expect(reparsed.read(name)).toEqual(st.read(name));
    expect(again.byteLength - reparsed.dataOffset).toBe(bytes.byteLength - st.dataOffset);
  });

  it("readAll gives the same tensors as read, for all or a subset, across gaps and misaligned offsets", async () => {
    const file = await SafetensorsFile.open(fixture);
    try {
      const all = await file.readAll();
      expect([...all.keys()].sort()).toEqual([...file.tensors.keys()].sort());
      for (const [name, t] of all) expect(t).toEqual(await file.read(name));
      const some = await file.readAll(["bool", "f64", "bool"]);
      expect([...some.keys()]).toEqual(["f64", "bool"]);
    } finally {
      await file.close();
    }
    // Two runs: a 2 MiB tensor between the wanted ones is skipped, not read.
    const path = join(dir, "gap.safetensors");
    await writeSafetensors(path, [
      { name: "a", dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
      { name: "big", dtype: "F32", shape: [1 << 19], data: () => new Float32Array(1 << 19) },
      { name: "b", dtype: "F32", shape: [2], data: new Float32Array([5, 6]) },
    ]);
    const ckpt = await openCheckpoint(path);
    try {
      const got = await ckpt.readAll(["b", "a"]);
      expect(got.get("a")!.data).toEqual(new Uint8Array([1, 2, 3]));
      expect(got.get("b")!.data).toEqual(new Float32Array([5, 6]));
    } finally {
      await ckpt.close();
    }
  });

  it("reads tensors by position without reading the rest of the file", async () => {
    const file = await SafetensorsFile.open(fixture);
    const info = file.info("bf16");
    expect(info.byteOffset).toBe(file.dataOffset + 68);
    expect(info.byteLength).toBe(8);
    await file.close();
    await expectCode(file.read("bf16"), "CLOSED");
  });
});

describe("dtype conversions", () => {
  const f16round = (Math as unknown as { f16round: (x: number) => number }).f16round;

  it("F16 → F32 → F16 is the identity on every non-NaN half, and F32 → F16 rounds like Math.f16round", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f32 = toFloat32("F16", all);
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(f32[h])) {
        expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
        continue;
      }
      expect(float32ToF16Bits(f32[h]!)).toBe(h);
    }
    const values = [1 / 3, 65519.99, 65520, 1e-8, 2.98e-8, -2.9802322387695312e-8, 2 ** -24, 1e6, 0.1];
    for (let i = 0; i < 2000; i++) values.push((Math.sin(i * 7.1) * 2 ** ((i % 60) - 30)) / 3);
    for (const v of values) {
      const bits = float32ToF16Bits(v);
      expect(toFloat32("F16", new Uint16Array([bits]))[0], String(v)).toBe(f16round(Math.fround(v)));
    }
  });

  it("BF16 rounds to nearest even and round-trips", () => {
    expect(float32ToBF16Bits(1)).toBe(0x3f80);
    expect(float32ToBF16Bits(-3.5)).toBe(0xc060);
    // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even mantissa (1.0).
    expect(float32ToBF16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(float32ToBF16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(Number.isNaN(toFloat32("BF16", fromFloat32("BF16", [Number.NaN]))[0])).toBe(true);
    const xs = new Float32Array([0.5, -2, 1024, 3 * 2 ** -70]);
    expect(toFloat32("BF16", fromFloat32("BF16", xs))).toEqual(xs);
  });

  it("decodes float8 e4m3fn and e5m2 as torch does", () => {
    // Bytes and values from the OCP 8-bit floating point spec (the torch float8 types).
    const e4m3 = toFloat32("F8_E4M3", new Uint8Array([0x00, 0x38, 0x7e, 0x01, 0x7f, 0xb8, 0x08]));
    expect([...e4m3]).toEqual([0, 1, 448, 2 ** -9, Number.NaN, -1, 2 ** -6]);
    const e5m2 = toFloat32("F8_E5M2", new Uint8Array([0x3c, 0x7b, 0x7c, 0x01, 0xc0]));
    expect([...e5m2]).toEqual([1, 57344, Number.POSITIVE_INFINITY, 2 ** -16, -2]);
  });
});

function sample(dtype: DType, n: number): ArrayBufferView {
  const bytes = new Uint8Array(n * DTYPE_BYTES[dtype]);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + dtype.length) & 0xff;
  if (dtype === "BOOL") for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! & 1;
  return bytes;
}

describe("writing", () => {
  it("round-trips every dtype through a file, with metadata", async () => {
    const path = join(dir, "all.safetensors");
    const entries: TensorEntry[] = DTYPES.map((dtype, i) => ({
      name: `t.${dtype}`,
      dtype,
      shape: [i % 3, 3, 2].slice(0, 1 + (i % 3)).map((d) => d + 1),
      data: sample(
        dtype,
        [i % 3, 3, 2].slice(0, 1 + (i % 3)).reduce((a, d) => a * (d + 1), 1),
      ),
    }));
    const result = await writeSafetensors(path, entries, { origin: "test" });
    const file = await SafetensorsFile.open(path);
    try {
      expect(file.size).toBe(result.size);
      expect(file.metadata.origin).toBe("test");
      for (const e of entries) {
        const t = await file.read(e.name);
        expect(t.dtype).toBe(e.dtype);
        expect(t.shape).toEqual(e.shape);
        const view = e.data as Uint8Array;
        expect(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toEqual(view);
        expect(file.info(e.name)).toEqual(result.tensors.get(e.name));
      }
    } finally {
      await file.close();
    }
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("fetches callback data one tensor at a time, in declared order, from an async iterable", async () => {
    const path = join(dir, "lazy.safetensors");
    const calls: string[] = [];
    let live = 0;
    let maxLive = 0;
    async function* entries(): AsyncGenerator<TensorEntry> {
      for (let i = 0; i < 5; i++) {
        yield {
          name: `layer.${i}`,
          dtype: "F32",
          shape: [256, 256],
          data: async () => {
            calls.push(`layer.${i}`);
            live++;
            maxLive = Math.max(maxLive, live);
            queueMicrotask(() => live--);
            return new Float32Array(256 * 256).fill(i);
          },
        };
      }
    }
    await writeSafetensors(path, entries());
    expect(calls).toEqual(["layer.0", "layer.1", "layer.2", "layer.3", "layer.4"]);
    expect(maxLive).toBe(1);
    const file = await SafetensorsFile.open(path);
    expect((await file.readF32("layer.3"))[1000]).toBe(3);
    await file.close();
  });

  it("leaves the old file intact and no temp file when a write fails", async () => {
    const path = join(dir, "m.safetensors");
    await writeSafetensors(path, [{ name: "a", dtype: "F32", shape: [1], data: new Float32Array([1]) }]);
    const before = await readFile(path);
    await expectCode(
      writeSafetensors(path, [
        { name: "a", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
        { name: "b", dtype: "F32", shape: [3], data: new Float32Array([1, 2]) },
      ]),
      "SIZE_MISMATCH",
    );
    expect(await readFile(path)).toEqual(before);
    expect(await readdir(dir)).toEqual(["m.safetensors"]);
  });

  it("refuses duplicate names, the reserved __metadata__ name and bad shapes", async () => {
    const a = { name: "a", dtype: "U8" as const, shape: [1], data: new Uint8Array(1) };
    await expectCode(writeSafetensors(join(dir, "x.safetensors"), [a, a]), "DUPLICATE_TENSOR");
    await expectCode(() => serializeSafetensors([{ ...a, name: "__metadata__" }]), "DUPLICATE_TENSOR");
    await expectCode(() => serializeSafetensors([{ ...a, shape: [-1] }]), "INVALID_SHAPE");
    await expectCode(() => serializeSafetensors([{ ...a, dtype: "F4" as DType }]), "UNKNOWN_DTYPE");
  });
});

describe("sharded checkpoints", () => {
  const tensors = (): TensorEntry[] =>
    Array.from({ length: 6 }, (_, i) => ({
      name: `model.layers.${i}.weight`,
      dtype: "F32" as const,
      shape: [100, 10],
      data: () => new Float32Array(1000).fill(i + 0.5),
    }));

  it("writes shards plus an index, and openCheckpoint maps every tensor to its file", async () => {
    const files = await writeCheckpoint(dir, tensors(), { maxShardBytes: 8000, metadata: { format: "pt" } });
    expect(files).toEqual([
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      INDEX_FILE,
    ]);
    const index = JSON.parse(await readFile(join(dir, INDEX_FILE), "utf8"));
    expect(index.metadata.total_size).toBe(6 * 4000);
    const ckpt = await openCheckpoint(dir);
    try {
      expect(ckpt.files.size).toBe(3);
      expect(ckpt.metadata).toEqual({ format: "pt" });
      expect(ckpt.info("model.layers.5.weight").file).toBe("model-00003-of-00003.safetensors");
      expect((await ckpt.readF32("model.layers.4.weight"))[999]).toBe(4.5);
      await expectCode(ckpt.read("missing"), "TENSOR_NOT_FOUND");
    } finally {
      await ckpt.close();
    }
  });

  it("opens a single model.safetensors, or a .safetensors path", async () => {
    expect(await writeCheckpoint(dir, tensors())).toEqual(["model.safetensors"]);
    for (const p of [dir, join(dir, "model.safetensors")]) {
      const ckpt = await openCheckpoint(p);
      expect(ckpt.tensors.size).toBe(6);
      expect((await ckpt.readF32("model.layers.0.weight"))[0]).toBe(0.5);
      await ckpt.close();
    }
  });

  it("rejects an empty directory, path escapes and tensors missing from their shard", async () => {
    await expectCode(openCheckpoint(dir), "NO_CHECKPOINT");
    await writeCheckpoint(dir, tensors(), { maxShardBytes: 8000 });
    const indexPath = join(dir, INDEX_FILE);
    const index = JSON.parse(await readFile(indexPath, "utf8"));
    await writeFile(indexPath, JSON.stringify({ weight_map: { a: "../evil.safetensors" } }));
    await expectCode(openCheckpoint(dir), "INVALID_INDEX");
    await writeFile(indexPath, "{ not json");
    await expectCode(openCheckpoint(dir), "INVALID_INDEX");
    index.weight_map["model.layers.0.weight"] = "model-00002-of-00003.safetensors";
    await writeFile(indexPath, JSON.stringify(index));
    const err = await expectCode(openCheckpoint(dir), "INVALID_INDEX");
    expect(err.shortMessage).toContain("model.layers.0.weight");
  });
});
