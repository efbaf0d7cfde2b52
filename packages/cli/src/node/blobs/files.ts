/**
 * Small file-system helpers shared by the blob and chunk stores: every file appears under its final
 * name only complete and fsynced (temp file + fsync + rename + fsync of the directory), so a process
 * killed at any point leaves either the whole file or nothing but a temp file, which `open` removes.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, readdir, rename, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { BlobError } from "./errors.ts";

const HEX32 = /^[0-9a-f]{64}$/;

/** A 32-byte hash as lowercase hex, from bytes or hex (any case); INVALID_ARGUMENT otherwise. */
export function hashHex(hash: Uint8Array | string, what = "hash"): string {
  if (typeof hash === "string") {
    const hex = hash.toLowerCase();
    if (HEX32.test(hex)) return hex;
  } else if (hash instanceof Uint8Array && hash.byteLength === 32) {
    return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("hex");
  }
  throw new BlobError("INVALID_ARGUMENT", `${what} is not a 32-byte hash`, {
    details: typeof hash === "string" ? hash.slice(0, 80) : `${(hash as Uint8Array)?.byteLength} bytes`,
  });
}

export const isHashHex = (name: string): boolean => HEX32.test(name);

export const hexToBytes = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, "hex"));

export function ioError(what: string, cause: unknown, path: string): BlobError {
  return new BlobError("IO", what, { cause, meta: { path } });
}

/** Creates `tmpDir` and empties it of what a killed process left behind. */
export async function prepareTempDir(tmpDir: string): Promise<void> {
  try {
    await rm(tmpDir, { recursive: true, force: true });
    await mkdir(tmpDir, { recursive: true });
  } catch (cause) {
    throw ioError("cannot prepare the temp directory", cause, tmpDir);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function writeAll(handle: FileHandle, bytes: Uint8Array, position?: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const at = position === undefined ? null : position + done;
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, at);
    done += bytesWritten;
  }
}

/** A temp file that becomes `finalPath` on `commit()`, or disappears on `discard()`. */
export class AtomicFile {
  readonly path: string;
  readonly handle: FileHandle;

  private constructor(path: string, handle: FileHandle) {
    this.path = path;
    this.handle = handle;
  }

  static async create(tmpDir: string): Promise<AtomicFile> {
    const path = join(tmpDir, `${randomBytes(8).toString("hex")}.part`);
    try {
      return new AtomicFile(path, await open(path, "wx"));
    } catch (cause) {
      throw ioError("cannot create a temp file", cause, path);
    }
  }

  async commit(finalPath: string, finalDir: string): Promise<void> {
    try {
      await this.handle.sync();
      await this.handle.close();
      await rename(this.path, finalPath);
      await fsyncDir(finalDir);
    } catch (cause) {
      await this.discard();
      throw ioError("cannot write the file", cause, finalPath);
    }
  }

  async discard(): Promise<void> {
    await this.handle.close().catch(() => {});
    await unlink(this.path).catch(() => {});
  }
}

/** Writes `bytes` to `finalPath` atomically. */
export async function writeFileAtomic(
  tmpDir: string,
  finalDir: string,
  finalPath: string,
  bytes: Uint8Array,
): Promise<void> {
  const file = await AtomicFile.create(tmpDir);
  try {
    await writeAll(file.handle, bytes);
  } catch (cause) {
    await file.discard();
    throw ioError("cannot write the file", cause, finalPath);
  }
  await file.commit(finalPath, finalDir);
}

/** Names in `dir`, or none when it does not exist. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw ioError("cannot list the directory", cause, dir);
  }
}

/** Reads up to `length` bytes at `offset` of an open file (fewer at the end of the file). */
export async function readAt(handle: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? out : out.subarray(0, done);
}
