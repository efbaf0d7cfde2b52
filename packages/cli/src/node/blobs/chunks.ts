/**
 * Weight chunks on disk: `<dir>/weights/<weightsId>/<index>` holds a chunk's bytes and `<index>.proof`
 * its Merkle audit path (concatenated 32-byte hashes), so a holder of a few chunks can prove each one
 * without the rest of the model; `manifest.json` beside them says how the chunks make up the files.
 * A chunk is written only after its proof checks against the weights id, and counts as present once
 * its bytes file exists (written after the proof, both atomically).
 */
import { mkdir, open, readFile, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { MAX_PROOF_HASHES, MAX_TRANSFER_CHUNK_BYTES } from "@deepshard/protocol";
import {
  type ChunkedWeights,
  chunkLocation,
  type ShardManifest,
  validateManifest,
  verifyChunk,
} from "@deepshard/tensor";
import { BlobError } from "./errors.ts";
import {
  fsyncDir,
  hashHex,
  ioError,
  isHashHex,
  listDir,
  prepareTempDir,
  readAt,
  writeFileAtomic,
} from "./files.ts";

const MANIFEST_FILE = "manifest.json";
const PROOF_SUFFIX = ".proof";

export interface StoredChunk {
  index: number;
  bytes: Uint8Array;
  proof: Uint8Array[];
}

interface Entry {
  manifest: ShardManifest;
  have: Set<number>;
  bytes: number;
}

export class ChunkStore {
  readonly dir: string;
  readonly #root: string;
  readonly #tmp: string;
  readonly #entries = new Map<string, Entry>();
  #totalSize = 0;

  private constructor(dir: string) {
    this.dir = dir;
    this.#root = join(dir, "weights");
    this.#tmp = join(dir, "weights", ".tmp");
  }

  /** Opens (creating) the chunk store under data directory `dir`, removing leftover temp files. */
  static async open(dir: string): Promise<ChunkStore> {
    const store = new ChunkStore(dir);
    try {
      await mkdir(store.#root, { recursive: true });
    } catch (cause) {
      throw ioError("cannot create the weights directory", cause, store.#root);
    }
    await prepareTempDir(store.#tmp);
    for (const id of await listDir(store.#root)) {
      if (!isHashHex(id)) continue;
      const folder = join(store.#root, id);
      let manifest: ShardManifest;
      try {
        manifest = validateManifest(JSON.parse(await readFile(join(folder, MANIFEST_FILE), "utf8")));
      } catch {
        // A folder without a readable manifest has no usable chunks (the manifest is written first).
        await rm(folder, { recursive: true, force: true });
        continue;
      }
      const entry: Entry = { manifest, have: new Set(), bytes: 0 };
      const names = new Set(await listDir(folder));
      for (const name of names) {
        if (!/^(0|[1-9][0-9]*)$/.test(name) || !names.has(`${name}${PROOF_SUFFIX}`)) continue;
        const index = Number(name);
        if (index >= manifest.chunkCount) continue;
        const { size } = await stat(join(folder, name));
        if (size !== chunkLocation(manifest, index).length) continue;
        entry.have.add(index);
        entry.bytes += size;
      }
      store.#entries.set(id, entry);
      store.#totalSize += entry.bytes;
    }
    return store;
  }

  /** Weights ids with a stored manifest. */
  weights(): string[] {
    return [...this.#entries.keys()];
  }

  manifest(weightsId: Uint8Array | string): ShardManifest | undefined {
    return this.#entries.get(hashHex(weightsId, "weights id"))?.manifest;
  }

  /** Stored chunk indices of `weightsId`, ascending. */
  indices(weightsId: Uint8Array | string): number[] {
    const entry = this.#entries.get(hashHex(weightsId, "weights id"));
    return entry ? [...entry.have].sort((a, b) => a - b) : [];
  }

  has(weightsId: Uint8Array | string, index: number): boolean {
    return this.#entries.get(hashHex(weightsId, "weights id"))?.have.has(index) ?? false;
  }

  /** Bytes of every stored chunk. */
  get totalSize(): number {
    return this.#totalSize;
  }

  /**
   * Stores the manifest of a weights id (checked for consistency; its chunks then check it against
   * the id). A second, different manifest for the same id is MANIFEST_CONFLICT.
   */
  async putManifest(manifest: ShardManifest): Promise<void> {
    const m = validateManifest(manifest);
    if (m.chunkSize > MAX_TRANSFER_CHUNK_BYTES) {
      throw new BlobError("INVALID_ARGUMENT", `chunks of ${m.chunkSize} bytes are too large to transfer`, {
        details: `the limit is ${MAX_TRANSFER_CHUNK_BYTES} bytes`,
      });
    }
    const existing = this.#entries.get(m.weightsId);
    if (existing) {
      if (JSON.stringify(existing.manifest) === JSON.stringify(m)) return;
      throw new BlobError("MANIFEST_CONFLICT", `a different manifest is stored for ${m.weightsId}`);
    }
    const folder = join(this.#root, m.weightsId);
    try {
      await mkdir(folder, { recursive: true });
      await fsyncDir(this.#root);
    } catch (cause) {
      throw ioError("cannot create the weights folder", cause, folder);
    }
    const json = new TextEncoder().encode(`${JSON.stringify(m)}\n`);
    await writeFileAtomic(this.#tmp, folder, join(folder, MANIFEST_FILE), json);
    this.#entries.set(m.weightsId, { manifest: m, have: new Set(), bytes: 0 });
  }

  /** Verifies chunk `index` against its weights id, then stores it; INVALID_CHUNK names the chunk. */
  async put(
    weightsId: Uint8Array | string,
    index: number,
    bytes: Uint8Array,
    proof: readonly Uint8Array[],
  ): Promise<void> {
    const id = hashHex(weightsId, "weights id");
    const entry = this.#entries.get(id);
    if (!entry) {
      throw new BlobError("NO_MANIFEST", `no manifest stored for weights ${id}`, { meta: { weightsId: id } });
    }
    if (!Number.isSafeInteger(index) || index < 0 || index >= entry.manifest.chunkCount) {
      throw new BlobError(
        "INVALID_ARGUMENT",
        `chunk ${index} is outside 0..${entry.manifest.chunkCount - 1}`,
        { meta: { weightsId: id, index } },
      );
    }
    if (proof.length > MAX_PROOF_HASHES || !verifyChunk(entry.manifest, index, bytes, proof)) {
      throw new BlobError("INVALID_CHUNK", `chunk ${index} does not match weights id ${id}`, {
        details: "its bytes or its proof are wrong",
        meta: { weightsId: id, index },
      });
    }
    if (entry.have.has(index)) return;
    const folder = join(this.#root, id);
    await writeFileAtomic(this.#tmp, folder, join(folder, `${index}${PROOF_SUFFIX}`), concat(proof));
    await writeFileAtomic(this.#tmp, folder, join(folder, String(index)), bytes);
    if (!entry.have.has(index)) {
      entry.have.add(index);
      entry.bytes += bytes.byteLength;
      this.#totalSize += bytes.byteLength;
    }
  }

  /** Stores the manifest and the chosen chunks (all by default) of weights held whole. */
  async putFrom(weights: ChunkedWeights, indices?: Iterable<number>): Promise<void> {
    await this.putManifest(weights.manifest);
    const chosen = indices ?? Array.from({ length: weights.manifest.chunkCount }, (_, i) => i);
    for (const i of chosen) {
      const c = await weights.chunk(i);
      await this.put(weights.weightsId, i, c.bytes, c.proof);
    }
  }

  /** A stored chunk with its proof; NOT_FOUND when absent. */
  async get(weightsId: Uint8Array | string, index: number): Promise<StoredChunk> {
    const id = hashHex(weightsId, "weights id");
    const entry = this.#entries.get(id);
    if (!entry?.have.has(index)) {
      throw new BlobError("NOT_FOUND", `no chunk ${index} of weights ${id}`, {
        meta: { weightsId: id, index },
      });
    }
    const folder = join(this.#root, id);
    try {
      const length = chunkLocation(entry.manifest, index).length;
      const handle = await open(join(folder, String(index)), "r");
      let bytes: Uint8Array;
      try {
        bytes = await readAt(handle, 0, length);
      } finally {
        await handle.close();
      }
      const raw = new Uint8Array(await readFile(join(folder, `${index}${PROOF_SUFFIX}`)));
      const proof: Uint8Array[] = [];
      for (let o = 0; o + 32 <= raw.byteLength; o += 32) proof.push(raw.subarray(o, o + 32));
      return { index, bytes, proof };
    } catch (cause) {
      throw ioError(`cannot read chunk ${index} of weights ${id}`, cause, folder);
    }
  }

  /** Deletes one chunk, or every chunk and the manifest when `index` is omitted. */
  async delete(weightsId: Uint8Array | string, index?: number): Promise<void> {
    const id = hashHex(weightsId, "weights id");
    const entry = this.#entries.get(id);
    if (!entry) return;
    const folder = join(this.#root, id);
    try {
      if (index === undefined) {
        this.#entries.delete(id);
        this.#totalSize -= entry.bytes;
        await rm(folder, { recursive: true, force: true });
        await fsyncDir(this.#root);
        return;
      }
      if (!entry.have.delete(index)) return;
      const size = chunkLocation(entry.manifest, index).length;
      entry.bytes -= size;
      this.#totalSize -= size;
      // Bytes first: a chunk without its proof file is not counted as present.
      await unlink(join(folder, String(index))).catch(ignoreMissing);
      await unlink(join(folder, `${index}${PROOF_SUFFIX}`)).catch(ignoreMissing);
      await fsyncDir(folder);
    } catch (cause) {
      throw ioError(`cannot delete weights ${id}`, cause, folder);
    }
  }
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
