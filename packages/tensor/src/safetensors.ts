/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON header, then the raw tensor
 * data. Validation follows the reference library (huggingface/safetensors): header at most 100 MB,
 * every tensor's offsets contiguous and non-overlapping, covering the data area exactly, and
 * shape × dtype size = byte length. Bad input always gives a SafetensorsError, and the header length
 * is checked against the bound and the file size before anything is allocated.
 */
import { randomBytes } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DeepshardError, type DeepshardErrorOptions } from "@deepshard/protocol";

/** Every dtype of the format (safetensors 0.4+), with its size in bytes. */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

export type DType = keyof typeof DTYPE_BYTES;

export const DTYPES = Object.keys(DTYPE_BYTES) as DType[];

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && Object.hasOwn(DTYPE_BYTES, value);
}

/** The reference library's bound; a larger header is refused before it is read. */
export const MAX_HEADER_BYTES = 100_000_000;

export type SafetensorsErrorCode =
  | "TRUNCATED"
  | "HEADER_TOO_LARGE"
  | "HEADER_BEYOND_FILE"
  | "HEADER_NOT_UTF8"
  | "HEADER_NOT_JSON"
  | "HEADER_NOT_OBJECT"
  | "INVALID_METADATA"
  | "INVALID_TENSOR_INFO"
  | "UNKNOWN_DTYPE"
  | "INVALID_SHAPE"
  | "INVALID_OFFSETS"
  | "NOT_CONTIGUOUS"
  | "SIZE_MISMATCH"
  | "DATA_AREA_MISMATCH"
  | "TENSOR_NOT_FOUND"
  | "DUPLICATE_TENSOR"
  | "INVALID_INDEX"
  | "NO_CHECKPOINT"
  | "CLOSED"
  | "UNSUPPORTED_HOST"
  | "IO";

export class SafetensorsError extends DeepshardError<SafetensorsErrorCode> {
  override name = "SafetensorsError";
}

function fail(code: SafetensorsErrorCode, message: string, options?: DeepshardErrorOptions): never {
  throw new SafetensorsError(code, message, options);
}

/** Where a tensor lives. `byteOffset` is absolute: from the start of the file (or buffer), header included. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  byteOffset: number;
  byteLength: number;
}

/**
 * The typed array a dtype is read into. F16, BF16 and both F8 types keep their raw bits
 * (Uint16Array / Uint8Array); use `toFloat32` or `readF32` to compute with them.
 */
export type TensorArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorArray;
}

export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes. */
  headerLength: number;
  /** Absolute offset of the data area (8 + N). */
  dataOffset: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Reads and bounds-checks the 8-byte header length against `fileSize` (the whole file or buffer).
 * Called before the header is allocated, so a hostile length costs nothing.
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (prefix.byteLength < 8 || fileSize < 8) {
    fail("TRUNCATED", "safetensors file is shorter than its 8-byte header length", {
      meta: { size: fileSize },
    });
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail("HEADER_TOO_LARGE", `safetensors header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, {
      meta: { headerLength: n.toString() },
    });
  }
  const headerLength = Number(n);
  if (8 + headerLength > fileSize) {
    fail("HEADER_BEYOND_FILE", `safetensors header length ${headerLength} runs past the end of the file`, {
      details: `the file has ${fileSize} bytes, the header needs ${8 + headerLength}`,
      meta: { headerLength, size: fileSize },
    });
  }
  return headerLength;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses and validates the JSON header. `fileSize` is the total size (header included): the tensors
 * must cover the data area exactly, as the reference library requires.
 */
export function parseHeader(json: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = json.byteLength;
  const dataOffset = 8 + headerLength;
  let text: string;
  try {
    text = utf8.decode(json);
  } catch (cause) {
    fail("HEADER_NOT_UTF8", "safetensors header is not valid UTF-8", { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    fail("HEADER_NOT_JSON", "safetensors header is not valid JSON", { cause });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    fail("HEADER_NOT_OBJECT", "safetensors header is not a JSON object");
  }
  let metadata: Record<string, string> = {};
  const entries: TensorInfo[] = [];
  const offsets: [number, number][] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(value);
      continue;
    }
    const [info, begin, end] = parseTensorInfo(name, value, dataOffset);
    entries.push(info);
    offsets.push([begin, end]);
  }
  // Sort by offsets, then walk: each tensor must start where the previous one ended.
  const order = entries.map((_, i) => i);
  order.sort((a, b) => offsets[a]![0] - offsets[b]![0] || offsets[a]![1] - offsets[b]![1]);
  let cursor = 0;
  for (const i of order) {
    const info = entries[i]!;
    const [begin, end] = offsets[i]!;
    if (begin !== cursor) {
      fail(
        "NOT_CONTIGUOUS",
        `tensor "${info.name}" starts at data offset ${begin} but the previous tensor ends at ${cursor}`,
        {
          details: begin < cursor ? "tensors overlap" : "a gap in the data area",
          meta: { tensor: info.name },
        },
      );
    }
    cursor = end;
  }
  const dataLength = fileSize - dataOffset;
  if (cursor !== dataLength) {
    fail("DATA_AREA_MISMATCH", `tensors cover ${cursor} bytes but the data area has ${dataLength}`, {
      meta: { covered: cursor, dataLength },
    });
  }
  const tensors = new Map<string, TensorInfo>();
  for (const info of entries) tensors.set(info.name, info);
  return { headerLength, dataOffset, tensors, metadata };
}

function parseMetadata(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("INVALID_METADATA", "safetensors __metadata__ is not a JSON object");
  }
  const pairs = Object.entries(value);
  for (const [key, v] of pairs) {
    if (typeof v !== "string") {
      fail("INVALID_METADATA", `safetensors __metadata__ value for "${key}" is not a string`, {
        meta: { key },
      });
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(pairs) as Record<string, string>;
}

function parseTensorInfo(name: string, value: unknown, dataOffset: number): [TensorInfo, number, number] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("INVALID_TENSOR_INFO", `tensor "${name}" is not described by a JSON object`, {
      meta: { tensor: name },
    });
  }
  const { dtype, shape, data_offsets: dataOffsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string") {
    fail("INVALID_TENSOR_INFO", `tensor "${name}" has no dtype string`, { meta: { tensor: name } });
  }
  if (!isDType(dtype)) {
    fail("UNKNOWN_DTYPE", `tensor "${name}" has unknown dtype "${dtype.slice(0, 40)}"`, {
      details: `known dtypes: ${DTYPES.join(", ")}`,
      meta: { tensor: name, dtype: dtype.slice(0, 40) },
    });
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail("INVALID_SHAPE", `tensor "${name}" shape is not a list of non-negative integers`, {
      meta: { tensor: name },
    });
  }
  if (
    !Array.isArray(dataOffsets) ||
    dataOffsets.length !== 2 ||
    !dataOffsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    dataOffsets[1] < dataOffsets[0]
  ) {
    fail("INVALID_OFFSETS", `tensor "${name}" data_offsets is not [begin, end] with 0 <= begin <= end`, {
      meta: { tensor: name },
    });
  }
  const [begin, end] = dataOffsets as [number, number];
  const dims = shape as number[];
  const expected = byteSize(dtype, dims);
  if (expected === undefined || expected !== end - begin) {
    fail(
      "SIZE_MISMATCH",
      `tensor "${name}" has ${end - begin} bytes but shape [${dims.join(", ")}] × ${dtype} needs ${expected ?? "more than 2^53"}`,
      { meta: { tensor: name } },
    );
  }
  const info: TensorInfo = {
    name,
    dtype,
    shape: dims,
    byteOffset: dataOffset + begin,
    byteLength: end - begin,
  };
  return [info, begin, end];
}

/** shape × dtype size in bytes, or undefined when it exceeds 2^53. */
export function byteSize(dtype: DType, shape: readonly number[]): number | undefined {
  let n = DTYPE_BYTES[dtype];
  if (shape.includes(0)) return 0;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A typed array over `bytes` (which must be aligned for the dtype and a multiple of its size). */
function typedView(dtype: DType, buffer: ArrayBuffer, byteOffset: number, byteLength: number): TensorArray {
  if (!HOST_LITTLE_ENDIAN) fail("UNSUPPORTED_HOST", "safetensors typed arrays need a little-endian host");
  const n = byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case "BOOL":
    case "U8":
    case "F8_E4M3":
    case "F8_E5M2":
      return new Uint8Array(buffer, byteOffset, n);
    case "I8":
      return new Int8Array(buffer, byteOffset, n);
    case "I16":
      return new Int16Array(buffer, byteOffset, n);
    case "U16":
    case "F16":
    case "BF16":
      return new Uint16Array(buffer, byteOffset, n);
    case "I32":
      return new Int32Array(buffer, byteOffset, n);
    case "U32":
      return new Uint32Array(buffer, byteOffset, n);
    case "F32":
      return new Float32Array(buffer, byteOffset, n);
    case "F64":
      return new Float64Array(buffer, byteOffset, n);
    case "I64":
      return new BigInt64Array(buffer, byteOffset, n);
    case "U64":
      return new BigUint64Array(buffer, byteOffset, n);
  }
}

/** A typed array of `dtype` over `bytes`: a view when aligned, otherwise a copy. */
export function bytesToTypedArray(dtype: DType, bytes: Uint8Array): TensorArray {
  if (bytes.byteLength % DTYPE_BYTES[dtype] !== 0) {
    fail("SIZE_MISMATCH", `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  if (bytes.byteOffset % DTYPE_BYTES[dtype] === 0 && bytes.buffer instanceof ArrayBuffer) {
    return typedView(dtype, bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return typedView(dtype, copy.buffer, 0, copy.byteLength);
}

let f16Table: Float32Array | undefined;

function f16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** All 65536 half-precision values, built once: a table lookup is the fastest conversion in JS. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16Bits(h);
  }
  return f16Table;
}

let e4m3Table: Float32Array | undefined;

/** float8 e4m3fn (as torch.float8_e4m3fn): bias 7, no infinities, S.1111.111 is NaN. */
function e4m3(): Float32Array {
  if (!e4m3Table) {
    e4m3Table = new Float32Array(256);
    for (let b = 0; b < 256; b++) {
      const sign = b & 0x80 ? -1 : 1;
      const exp = (b >> 3) & 0xf;
      const mant = b & 7;
      e4m3Table[b] =
        exp === 15 && mant === 7
          ? Number.NaN
          : exp === 0
            ? sign * mant * 2 ** -9
            : sign * (1 + mant / 8) * 2 ** (exp - 7);
    }
  }
  return e4m3Table;
}

/** Converts any dtype's data to Float32 for compute (64-bit integers beyond 2^24 lose precision). */
export function toFloat32(dtype: DType, data: TensorArray): Float32Array {
  const n = data.length;
  switch (dtype) {
    case "F32":
      return data as Float32Array;
    case "F16": {
      const table = halfTable();
      const src = data as Uint16Array;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case "BF16": {
      const src = data as Uint16Array;
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case "F8_E5M2": {
      // e5m2 is the top byte of an IEEE half.
      const table = halfTable();
      const src = data as Uint8Array;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]! << 8]!;
      return out;
    }
    case "F8_E4M3": {
      const table = e4m3();
      const src = data as Uint8Array;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case "BOOL": {
      const src = data as Uint8Array;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i] ? 1 : 0;
      return out;
    }
    case "I64":
    case "U64": {
      const src = data as BigInt64Array | BigUint64Array;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]!);
      return out;
    }
    default:
      return new Float32Array(data as Exclude<TensorArray, BigInt64Array | BigUint64Array>);
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half bits of `value`, rounded to nearest even (as numpy/torch do). */
export function float32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rem > half || (rem === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && m & 1)) m++;
  return sign | ((e << 10) + m);
}

/** bfloat16 bits of `value`, rounded to nearest even (as torch does). */
export function float32ToBF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  if (Number.isNaN(f32Scratch[0])) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts Float32 values to F16 or BF16 bits for writing. */
export function fromFloat32(dtype: "F16" | "BF16", values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  const convert = dtype === "F16" ? float32ToF16Bits : float32ToBF16Bits;
  for (let i = 0; i < values.length; i++) out[i] = convert(values[i]!);
  return out;
}

function lookup(tensors: Map<string, TensorInfo>, name: string): TensorInfo {
  const info = tensors.get(name);
  if (!info) fail("TENSOR_NOT_FOUND", `no tensor named "${name}"`, { meta: { tensor: name } });
  return info;
}

/** A safetensors file opened for positional reads: one tensor at a time, never the whole file. */
export class SafetensorsFile {
  readonly path: string;
  /** File size in bytes. */
  readonly size: number;
  readonly headerLength: number;
  readonly dataOffset: number;
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  #handle: FileHandle | undefined;

  private constructor(path: string, size: number, header: SafetensorsHeader, handle: FileHandle) {
    this.path = path;
    this.size = size;
    this.headerLength = header.headerLength;
    this.dataOffset = header.dataOffset;
    this.tensors = header.tensors;
    this.metadata = header.metadata;
    this.#handle = handle;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (cause) {
      fail("IO", `cannot open safetensors file ${path}`, { cause, meta: { path } });
    }
    try {
      const { size } = await handle.stat();
      const prefix = new Uint8Array(8);
      await readFully(handle, prefix, 0, Math.min(8, size));
      const headerLength = readHeaderLength(prefix.subarray(0, Math.min(8, size)), size);
      const json = new Uint8Array(headerLength);
      await readFully(handle, json, 8, headerLength);
      return new SafetensorsFile(path, size, parseHeader(json, size), handle);
    } catch (err) {
      await handle.close();
      if (err instanceof SafetensorsError) {
        err.meta.path = path;
        throw err;
      }
      fail("IO", `cannot read safetensors file ${path}`, { cause: err, meta: { path } });
    }
  }

  info(name: string): TensorInfo {
    return lookup(this.tensors, name);
  }

  /** Raw bytes of `length` bytes at absolute `position`, in a fresh (8-byte aligned) buffer. */
  async readBytes(position: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0) {
      fail("INVALID_OFFSETS", `invalid read of ${length} bytes at ${position}`);
    }
    if (position + length > this.size) {
      fail("TRUNCATED", `read of ${length} bytes at ${position} runs past the end of ${this.path}`);
    }
    // Unpooled and not zero-filled: every byte is overwritten by the read, and offset 0 keeps it aligned.
    const buffer = Buffer.allocUnsafeSlow(length);
    const out = new Uint8Array(buffer.buffer, 0, length);
    await readFully(this.#open(), out, position, length);
    return out;
  }

  /**
   * Several tensors (default: all) with few large reads: tensors close together in the file are read
   * as one run, and each tensor is a view into its run's buffer when aligned (a copy otherwise). This
   * is the fast path for loading a model; the views keep their run's buffer alive.
   */
  async readAll(names: Iterable<string> = this.tensors.keys()): Promise<Map<string, Tensor>> {
    const infos = [...new Set(names)].map((n) => this.info(n)).sort((a, b) => a.byteOffset - b.byteOffset);
    const out = new Map<string, Tensor>();
    let i = 0;
    while (i < infos.length) {
      // Extend the run while the next tensor starts within RUN_GAP of the run's end.
      const start = infos[i]!.byteOffset;
      let end = start + infos[i]!.byteLength;
      let j = i + 1;
      while (
        j < infos.length &&
        infos[j]!.byteOffset - end <= RUN_GAP &&
        infos[j]!.byteOffset + infos[j]!.byteLength - start <= MAX_READ
      ) {
        end = Math.max(end, infos[j]!.byteOffset + infos[j]!.byteLength);
        j++;
      }
      const run = await this.readBytes(start, end - start);
      for (const info of infos.slice(i, j)) {
        const at = info.byteOffset - start;
        out.set(info.name, {
          dtype: info.dtype,
          shape: [...info.shape],
          data: bytesToTypedArray(info.dtype, run.subarray(at, at + info.byteLength)),
        });
      }
      i = j;
    }
    return out;
  }

  /** One tensor in its own dtype (see TensorArray for F16/BF16/F8). */
  async read(name: string): Promise<Tensor> {
    const info = this.info(name);
    const bytes = await this.readBytes(info.byteOffset, info.byteLength);
    return {
      dtype: info.dtype,
      shape: [...info.shape],
      data: typedView(info.dtype, bytes.buffer, 0, bytes.byteLength),
    };
  }

  /** One tensor converted to Float32 for compute. */
  async readF32(name: string): Promise<Float32Array> {
    const t = await this.read(name);
    return toFloat32(t.dtype, t.data);
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  #open(): FileHandle {
    if (!this.#handle) fail("CLOSED", `safetensors file ${this.path} is closed`);
    return this.#handle;
  }
}

const MAX_READ = 1 << 30;
/** Bytes of unneeded tensors worth reading through rather than starting a new read. */
const RUN_GAP = 1 << 20;

async function readFully(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  length: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(target, done, Math.min(length - done, MAX_READ), position + done);
    if (bytesRead === 0) {
      fail("TRUNCATED", `file ended after ${position + done} bytes, ${length - done} more expected`);
    }
    done += bytesRead;
  }
}

/** A safetensors image in memory. Reads return views into `bytes` when aligned, copies otherwise. */
export interface SafetensorsBuffer extends SafetensorsHeader {
  bytes: Uint8Array;
  read(name: string): Tensor;
  readF32(name: string): Float32Array;
}

export function parseSafetensors(bytes: Uint8Array): SafetensorsBuffer {
  const headerLength = readHeaderLength(bytes.subarray(0, 8), bytes.byteLength);
  const header = parseHeader(bytes.subarray(8, 8 + headerLength), bytes.byteLength);
  const read = (name: string): Tensor => {
    const info = lookup(header.tensors, name);
    const slice = bytes.subarray(info.byteOffset, info.byteOffset + info.byteLength);
    return { dtype: info.dtype, shape: [...info.shape], data: bytesToTypedArray(info.dtype, slice) };
  };
  return {
    ...header,
    bytes,
    read,
    readF32: (name) => {
      const t = read(name);
      return toFloat32(t.dtype, t.data);
    },
  };
}

export interface TensorDescriptor {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/** Tensor data, or a callback that produces it when the writer reaches it (so only one is in memory). */
export type TensorSource = ArrayBufferView | (() => ArrayBufferView | Promise<ArrayBufferView>);

export interface TensorEntry extends TensorDescriptor {
  data: TensorSource;
}

/** The JSON header for `descriptors` in the given order, padded with spaces to a multiple of 8 bytes. */
export function encodeHeader(
  descriptors: readonly TensorDescriptor[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") fail("INVALID_METADATA", `metadata value for "${k}" is not a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const d of descriptors) {
    if (d.name === "__metadata__" || seen.has(d.name)) {
      fail("DUPLICATE_TENSOR", `tensor name "${d.name}" is used twice or reserved`, {
        meta: { tensor: d.name },
      });
    }
    seen.add(d.name);
    if (!isDType(d.dtype)) fail("UNKNOWN_DTYPE", `tensor "${d.name}" has unknown dtype "${String(d.dtype)}"`);
    if (!d.shape.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      fail("INVALID_SHAPE", `tensor "${d.name}" shape is not a list of non-negative integers`);
    }
    const n = byteSize(d.dtype, d.shape);
    if (n === undefined) fail("SIZE_MISMATCH", `tensor "${d.name}" is larger than 2^53 bytes`);
    Object.defineProperty(header, d.name, {
      value: { dtype: d.dtype, shape: [...d.shape], data_offsets: [offset, offset + n] },
      enumerable: true,
    });
    offset += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

/** A whole safetensors image in memory (for small tensors and tests). */
export function serializeSafetensors(
  tensors: readonly (TensorDescriptor & { data: ArrayBufferView })[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header = encodeHeader(tensors, metadata);
  let total = 8 + header.byteLength;
  for (const t of tensors) total += checkedBytes(t, t.data).byteLength;
  const out = new Uint8Array(total);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  out.set(header, 8);
  let offset = 8 + header.byteLength;
  for (const t of tensors) {
    const bytes = checkedBytes(t, t.data);
    out.set(bytes, offset);
    offset += bytes.byteLength;
  }
  return out;
}

function checkedBytes(d: TensorDescriptor, data: ArrayBufferView): Uint8Array {
  const expected = byteSize(d.dtype, d.shape);
  if (data.byteLength !== expected) {
    fail(
      "SIZE_MISMATCH",
      `tensor "${d.name}" data has ${data.byteLength} bytes, shape × ${d.dtype} needs ${expected}`,
      {
        meta: { tensor: d.name },
      },
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export interface WriteResult {
  path: string;
  /** Total file size. */
  size: number;
  tensors: Map<string, TensorInfo>;
}

/**
 * Writes a safetensors file atomically (temp file, fsync, rename). The header needs every shape and
 * dtype first, so `tensors` is consumed once for its descriptors; data given as callbacks is then
 * fetched one tensor at a time in declared order, so at most one tensor is held in memory.
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<TensorEntry> | AsyncIterable<TensorEntry>,
  metadata?: Record<string, string>,
): Promise<WriteResult> {
  const entries: TensorEntry[] = [];
  for await (const e of tensors) entries.push(e);
  const header = encodeHeader(entries, metadata);
  const dataOffset = 8 + header.byteLength;
  const infos = new Map<string, TensorInfo>();
  let offset = dataOffset;
  for (const e of entries) {
    const byteLength = byteSize(e.dtype, e.shape)!;
    infos.set(e.name, { name: e.name, dtype: e.dtype, shape: [...e.shape], byteOffset: offset, byteLength });
    offset += byteLength;
  }
  await atomicWrite(path, async (out) => {
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    await out.write(prefix);
    await out.write(header);
    for (const e of entries) {
      const data = typeof e.data === "function" ? await e.data() : e.data;
      await out.write(checkedBytes(e, data));
    }
  });
  return { path, size: offset, tensors: infos };
}

/** Where atomicWrite's body writes its bytes. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
}

/** Buffers small writes so that many tiny tensors do not cost a syscall each. */
class BufferedWriter implements ByteSink {
  readonly #handle: FileHandle;
  readonly #buffer = new Uint8Array(1 << 22);
  #used = 0;

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#used + bytes.byteLength <= this.#buffer.byteLength) {
      this.#buffer.set(bytes, this.#used);
      this.#used += bytes.byteLength;
      return;
    }
    await this.flush();
    if (bytes.byteLength <= this.#buffer.byteLength >> 1) {
      this.#buffer.set(bytes);
      this.#used = bytes.byteLength;
    } else {
      await writeFully(this.#handle, bytes);
    }
  }

  async flush(): Promise<void> {
    if (this.#used > 0) await writeFully(this.#handle, this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(bytes.byteLength - done, MAX_READ));
    done += bytesWritten;
  }
}

/**
 * Writes `path` through a temp file in the same directory: fsync, then rename, so a reader sees the
 * old file or the complete new one, never a torn one.
 */
export async function atomicWrite(path: string, body: (out: ByteSink) => Promise<void>): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  let handle: FileHandle;
  try {
    handle = await open(temp, "wx");
  } catch (cause) {
    fail("IO", `cannot create ${temp}`, { cause, meta: { path } });
  }
  try {
    const out = new BufferedWriter(handle);
    await body(out);
    await out.flush();
    await handle.sync();
    await handle.close();
    await rename(temp, path);
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    if (err instanceof SafetensorsError) throw err;
    fail("IO", `cannot write ${path}`, { cause: err, meta: { path } });
  }
  await syncDirectory(dirname(path));
}

/** Makes the rename durable; some platforms cannot open directories, which is harmless to skip. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r").catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => {});
  await handle.close();
}

/** Hugging Face's names for a single-file and a sharded checkpoint. */
export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

export interface CheckpointTensorInfo extends TensorInfo {
  /** File name (inside the checkpoint directory) that holds the tensor. */
  file: string;
}

/**
 * A checkpoint: one `model.safetensors`, or several shards listed by `model.safetensors.index.json`
 * (`{"metadata": {...}, "weight_map": {tensor: file}}`). Tensor names map to their file.
 */
export class Checkpoint {
  readonly dir: string;
  /** Open shard files by file name, in order of first appearance. */
  readonly files: Map<string, SafetensorsFile>;
  readonly tensors: Map<string, CheckpointTensorInfo>;
  /** `__metadata__` of the first file. */
  readonly metadata: Record<string, string>;
  /** The index's own `metadata` object (empty for a single file). */
  readonly indexMetadata: Record<string, unknown>;

  constructor(
    dir: string,
    files: Map<string, SafetensorsFile>,
    tensors: Map<string, CheckpointTensorInfo>,
    indexMetadata: Record<string, unknown>,
  ) {
    this.dir = dir;
    this.files = files;
    this.tensors = tensors;
    this.metadata = files.values().next().value?.metadata ?? {};
    this.indexMetadata = indexMetadata;
  }

  info(name: string): CheckpointTensorInfo {
    const info = this.tensors.get(name);
    if (!info)
      fail("TENSOR_NOT_FOUND", `no tensor named "${name}" in checkpoint ${this.dir}`, {
        meta: { tensor: name },
      });
    return info;
  }

  async read(name: string): Promise<Tensor> {
    return this.files.get(this.info(name).file)!.read(name);
  }

  async readF32(name: string): Promise<Float32Array> {
    return this.files.get(this.info(name).file)!.readF32(name);
  }

  /** Several tensors (default: all), with few large reads per file (see SafetensorsFile.readAll). */
  async readAll(names: Iterable<string> = this.tensors.keys()): Promise<Map<string, Tensor>> {
    const byFile = new Map<string, string[]>();
    for (const name of names) {
      const file = this.info(name).file;
      const list = byFile.get(file);
      if (list) list.push(name);
      else byFile.set(file, [name]);
    }
    const out = new Map<string, Tensor>();
    for (const [file, list] of byFile) {
      for (const [name, t] of await this.files.get(file)!.readAll(list)) out.set(name, t);
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

export interface OpenCheckpointOptions {
  /**
   * Of a sharded checkpoint, open only the shard files holding a tensor this accepts (a pipeline
   * stage needs some shards only, and may lack the others); `tensors` then lists those files' tensors.
   */
  select?: (tensor: string) => boolean;
}

/**
 * Opens a checkpoint directory (index first, then `model.safetensors`), or a `.safetensors` file path.
 * Every tensor of the weight map must exist in the file it names.
 */
export async function openCheckpoint(dir: string, options: OpenCheckpointOptions = {}): Promise<Checkpoint> {
  if (dir.endsWith(".safetensors") && (await isFile(dir))) return single(dirname(dir), basename(dir));
  const indexPath = join(dir, INDEX_FILE);
  if (await isFile(indexPath)) return sharded(dir, indexPath, options.select);
  if (await isFile(join(dir, SINGLE_FILE))) return single(dir, SINGLE_FILE);
  fail("NO_CHECKPOINT", `no ${SINGLE_FILE} or ${INDEX_FILE} in ${dir}`, { meta: { dir } });
}

async function single(dir: string, file: string): Promise<Checkpoint> {
  const f = await SafetensorsFile.open(join(dir, file));
  const tensors = new Map<string, CheckpointTensorInfo>();
  for (const [name, info] of f.tensors) tensors.set(name, { ...info, file });
  return new Checkpoint(dir, new Map([[file, f]]), tensors, {});
}

const INDEX_LIMIT = 64 << 20;

async function sharded(
  dir: string,
  indexPath: string,
  select: (tensor: string) => boolean = () => true,
): Promise<Checkpoint> {
  const weightMap = new Map<string, string>();
  let indexMetadata: Record<string, unknown> = {};
  {
    const size = (await stat(indexPath)).size;
    if (size > INDEX_LIMIT) fail("INVALID_INDEX", `${INDEX_FILE} is larger than ${INDEX_LIMIT} bytes`);
    const handle = await open(indexPath, "r");
    let parsed: unknown;
    try {
      const bytes = new Uint8Array(size);
      await readFully(handle, bytes, 0, size);
      parsed = JSON.parse(utf8.decode(bytes));
    } catch (cause) {
      if (cause instanceof SafetensorsError) throw cause;
      fail("INVALID_INDEX", `${INDEX_FILE} is not valid UTF-8 JSON`, { cause, meta: { path: indexPath } });
    } finally {
      await handle.close();
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      fail("INVALID_INDEX", `${INDEX_FILE} is not a JSON object`);
    }
    const { weight_map: map, metadata } = parsed as Record<string, unknown>;
    if (typeof map !== "object" || map === null || Array.isArray(map)) {
      fail("INVALID_INDEX", `${INDEX_FILE} has no "weight_map" object`);
    }
    if (metadata !== undefined) {
      if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
        fail("INVALID_INDEX", `${INDEX_FILE} "metadata" is not an object`);
      }
      indexMetadata = metadata as Record<string, unknown>;
    }
    for (const [name, file] of Object.entries(map)) {
      // A shard must be a plain file name beside the index: no paths, no escaping the directory.
      if (typeof file !== "string" || !/^[^/\\]+\.safetensors$/.test(file) || file.startsWith(".")) {
        fail("INVALID_INDEX", `${INDEX_FILE} maps "${name}" to an invalid file name`, {
          meta: { tensor: name },
        });
      }
      weightMap.set(name, file);
    }
  }
  const needed = new Set([...weightMap].filter(([name]) => select(name)).map(([, file]) => file));
  const files = new Map<string, SafetensorsFile>();
  try {
    for (const file of weightMap.values()) {
      if (needed.has(file) && !files.has(file)) files.set(file, await SafetensorsFile.open(join(dir, file)));
    }
    const tensors = new Map<string, CheckpointTensorInfo>();
    for (const [name, file] of weightMap) {
      if (!files.has(file)) continue;
      const info = files.get(file)!.tensors.get(name);
      if (!info) {
        fail("INVALID_INDEX", `${INDEX_FILE} maps "${name}" to ${file}, which has no such tensor`, {
          meta: { tensor: name, file },
        });
      }
      tensors.set(name, { ...info, file });
    }
    return new Checkpoint(dir, files, tensors, indexMetadata);
  } catch (err) {
    await Promise.all([...files.values()].map((f) => f.close()));
    throw err;
  }
}

export interface WriteCheckpointOptions {
  /** Start a new shard when the current one would pass this many bytes (default 5 GB, as transformers). */
  maxShardBytes?: number;
  metadata?: Record<string, string>;
}

/**
 * Writes a checkpoint directory the way transformers does: `model.safetensors` when everything fits
 * in one shard, else `model-0000i-of-0000n.safetensors` files plus `model.safetensors.index.json`.
 * Tensor data given as callbacks is fetched one at a time.
 */
export async function writeCheckpoint(
  dir: string,
  tensors: Iterable<TensorEntry> | AsyncIterable<TensorEntry>,
  options: WriteCheckpointOptions = {},
): Promise<string[]> {
  const maxShardBytes = options.maxShardBytes ?? 5e9;
  await mkdir(dir, { recursive: true }).catch((cause: unknown) =>
    fail("IO", `cannot create checkpoint directory ${dir}`, { cause, meta: { dir } }),
  );
  const shards: TensorEntry[][] = [[]];
  let shardBytes = 0;
  let total = 0;
  for await (const e of tensors) {
    const n = byteSize(e.dtype, e.shape);
    if (n === undefined) fail("SIZE_MISMATCH", `tensor "${e.name}" is larger than 2^53 bytes`);
    if (shardBytes > 0 && shardBytes + n > maxShardBytes) {
      shards.push([]);
      shardBytes = 0;
    }
    shards.at(-1)!.push(e);
    shardBytes += n;
    total += n;
  }
  if (shards.length === 1) {
    await writeSafetensors(join(dir, SINGLE_FILE), shards[0]!, options.metadata);
    return [SINGLE_FILE];
  }
  const width = Math.max(5, String(shards.length).length);
  const names = shards.map(
    (_, i) =>
      `model-${String(i + 1).padStart(width, "0")}-of-${String(shards.length).padStart(width, "0")}.safetensors`,
  );
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    await writeSafetensors(join(dir, names[i]!), shard, options.metadata);
    for (const e of shard) Object.defineProperty(weightMap, e.name, { value: names[i], enumerable: true });
  }
  const index = new TextEncoder().encode(
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  );
  await atomicWrite(join(dir, INDEX_FILE), (out) => out.write(index));
  return [...names, INDEX_FILE];
}
