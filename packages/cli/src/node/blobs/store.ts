/**
 * Content-addressed data blobs on disk: `<dir>/blobs/<sha256 hex>`. A blob is hashed and counted
 * while it streams in, written to a temp file, and renamed into place only once its hash and size are
 * right; a stream longer than allowed is refused at the first byte too many.
 *
 * One BlobStore owns its directory: opening it removes the temp files a killed process left behind,
 * so two live stores on one directory would delete each other's writes in progress.
 */
import { createHash } from "node:crypto";
import { mkdir, open, readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { BlobError } from "./errors.ts";
import {
  AtomicFile,
  fsyncDir,
  hashHex,
  ioError,
  isHashHex,
  listDir,
  prepareTempDir,
  readAt,
  writeAll,
} from "./files.ts";

/** Bytes, or chunks from a Node stream, a web ReadableStream or any (async) iterable. */
export type BlobSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface PutOptions {
  /** The content hash the bytes must have (hex or 32 bytes): HASH_MISMATCH otherwise. */
  expectedHash?: Uint8Array | string;
  /** The exact size announced: more is TOO_LARGE as soon as it exceeds, less is SIZE_MISMATCH. */
  size?: number;
  /** Refuse (TOO_LARGE) as soon as more bytes than this arrive. */
  maxBytes: number;
  signal?: AbortSignal;
}

export interface BlobInfo {
  /** sha256, lowercase hex. */
  hash: string;
  size: number;
}

export class BlobStore {
  readonly dir: string;
  readonly #blobs: string;
  readonly #tmp: string;
  /** hash → size of every stored blob: `has` and `size` need no disk access. */
  readonly #index = new Map<string, number>();
  #totalSize = 0;

  private constructor(dir: string) {
    this.dir = dir;
    this.#blobs = join(dir, "blobs");
    this.#tmp = join(dir, "blobs", ".tmp");
  }

  /** Opens (creating) the store under data directory `dir`, removing leftover temp files. */
  static async open(dir: string): Promise<BlobStore> {
    const store = new BlobStore(dir);
    try {
      await mkdir(store.#blobs, { recursive: true });
    } catch (cause) {
      throw ioError("cannot create the blob directory", cause, store.#blobs);
    }
    await prepareTempDir(store.#tmp);
    for (const name of await listDir(store.#blobs)) {
      if (!isHashHex(name)) continue;
      const s = await stat(join(store.#blobs, name));
      if (!s.isFile()) continue;
      store.#index.set(name, s.size);
      store.#totalSize += s.size;
    }
    return store;
  }

  /** Where a blob lives (whether or not it is stored). */
  path(hash: Uint8Array | string): string {
    return join(this.#blobs, hashHex(hash));
  }

  has(hash: Uint8Array | string): boolean {
    return this.#index.has(hashHex(hash));
  }

  /** The size of a stored blob, or undefined. */
  size(hash: Uint8Array | string): number | undefined {
    return this.#index.get(hashHex(hash));
  }

  list(): BlobInfo[] {
    return [...this.#index].map(([hash, size]) => ({ hash, size }));
  }

  /** Bytes of every stored blob. */
  get totalSize(): number {
    return this.#totalSize;
  }

  /**
   * Stores a blob, verifying size and hash while it streams in; returns its hash and size. Nothing
   * appears under the final name unless every check passed (a refused blob leaves nothing at all).
   */
  async put(source: BlobSource, options: PutOptions): Promise<BlobInfo> {
    const limit = checkCount("maxBytes", options.maxBytes);
    const announced = options.size === undefined ? undefined : checkCount("size", options.size);
    const expected = options.expectedHash === undefined ? undefined : hashHex(options.expectedHash);
    const allowed = Math.min(limit, announced ?? limit);
    const tooLarge = (size: number) =>
      new BlobError("TOO_LARGE", `blob is larger than ${allowed} bytes`, {
        details:
          announced !== undefined && announced <= limit
            ? `announced ${announced} bytes, received at least ${size}`
            : `the limit is ${limit} bytes`,
        meta: { limit: allowed, received: size, ...(expected ? { hash: expected } : {}) },
      });
    // Whole buffers are refused before a temp file is even created.
    if (source instanceof Uint8Array && source.byteLength > allowed) throw tooLarge(source.byteLength);

    const file = await AtomicFile.create(this.#tmp);
    const hasher = createHash("sha256");
    let size = 0;
    try {
      for await (const chunk of chunksOf(source)) {
        options.signal?.throwIfAborted();
        if (!(chunk instanceof Uint8Array)) {
          throw new BlobError("INVALID_ARGUMENT", "a blob stream yielded something other than bytes");
        }
        size += chunk.byteLength;
        if (size > allowed) throw tooLarge(size);
        hasher.update(chunk);
        await writeAll(file.handle, chunk);
      }
      if (announced !== undefined && size !== announced) {
        throw new BlobError("SIZE_MISMATCH", `blob has ${size} bytes, announced ${announced}`, {
          meta: { size, announced },
        });
      }
      const hash = hasher.digest("hex");
      if (expected !== undefined && hash !== expected) {
        throw new BlobError("HASH_MISMATCH", "blob does not match its content hash", {
          details: `expected ${expected}, got ${hash}`,
          meta: { expected, actual: hash },
        });
      }
      await file.commit(join(this.#blobs, hash), this.#blobs);
      const before = this.#index.get(hash);
      this.#index.set(hash, size);
      this.#totalSize += size - (before ?? 0);
      return { hash, size };
    } catch (err) {
      await file.discard();
      if (options.signal?.aborted && !(err instanceof BlobError)) {
        throw new BlobError("ABORTED", "storing the blob was aborted", { cause: options.signal.reason });
      }
      if (err instanceof BlobError) throw err;
      throw ioError("cannot store the blob", err, this.#blobs);
    }
  }

  /** The whole blob; NOT_FOUND when absent. */
  async get(hash: Uint8Array | string): Promise<Uint8Array> {
    const hex = this.#known(hash);
    try {
      return new Uint8Array(await readFile(join(this.#blobs, hex)));
    } catch (cause) {
      throw this.#readError(hex, cause);
    }
  }

  /**
   * Up to `length` bytes from `offset` (fewer at the end of the blob, none at its very end); an
   * offset past the end is BAD_RANGE.
   */
  async read(hash: Uint8Array | string, offset: number, length: number): Promise<Uint8Array> {
    const hex = this.#known(hash);
    checkCount("offset", offset);
    checkCount("length", length);
    const size = this.#index.get(hex)!;
    if (offset > size) {
      throw new BlobError("BAD_RANGE", `offset ${offset} is past the end of a ${size}-byte blob`, {
        meta: { hash: hex, offset, size },
      });
    }
    const take = Math.min(length, size - offset);
    if (take === 0) return new Uint8Array(0);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(join(this.#blobs, hex), "r");
    } catch (cause) {
      throw this.#readError(hex, cause);
    }
    try {
      return await readAt(handle, offset, take);
    } finally {
      await handle.close();
    }
  }

  /** Removes a blob; returns whether it was there. */
  async delete(hash: Uint8Array | string): Promise<boolean> {
    const hex = hashHex(hash);
    const size = this.#index.get(hex);
    if (size === undefined) return false;
    this.#index.delete(hex);
    this.#totalSize -= size;
    try {
      await unlink(join(this.#blobs, hex));
      await fsyncDir(this.#blobs);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw ioError("cannot delete", cause, hex);
    }
    return true;
  }

  #known(hash: Uint8Array | string): string {
    const hex = hashHex(hash);
    if (!this.#index.has(hex)) {
      throw new BlobError("NOT_FOUND", `no blob ${hex}`, { meta: { hash: hex } });
    }
    return hex;
  }

  #readError(hex: string, cause: unknown): BlobError {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") {
      // Deleted behind our back: forget it.
      this.#totalSize -= this.#index.get(hex) ?? 0;
      this.#index.delete(hex);
      return new BlobError("NOT_FOUND", `no blob ${hex}`, { meta: { hash: hex } });
    }
    return ioError("cannot read the blob", cause, hex);
  }
}

function checkCount(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BlobError("INVALID_ARGUMENT", `${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

async function* chunksOf(source: BlobSource): AsyncIterable<Uint8Array> {
  if (source instanceof Uint8Array) yield source;
  else yield* source;
}
