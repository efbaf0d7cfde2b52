/**
 * Weight sharding: a model's files are cut into fixed-size chunks whose RFC 6962 Merkle root is the
 * weights id; chunks are placed on nodes by rendezvous (highest random weight) hashing with
 * replication r, verified one by one with inclusion proofs, and reassembled into the original files.
 */
import { hash as nodeHash, randomBytes } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import {
  DeepshardError,
  MAX_CHUNK_COUNT,
  MerkleBuilder,
  merkleLeafHash,
  merkleNodeHash,
  verifyMerkleProof,
} from "@deepshard/protocol";
import { type Checkpoint, INDEX_FILE, openCheckpoint, SINGLE_FILE } from "./safetensors.ts";
import { isLayerRange } from "./stage.ts";

export const DEFAULT_CHUNK_SIZE = 1 << 20;
/** Bounds on manifests from peers: 16 Mi chunks (the wire's limit) of at most 1 GiB. */
export { MAX_CHUNK_COUNT };
export const MAX_CHUNK_SIZE = 1 << 30;

export type ShardErrorCode =
  | "INVALID_MANIFEST"
  | "INVALID_CHUNK"
  | "CHUNK_OUT_OF_RANGE"
  | "MISSING_CHUNKS"
  | "INVALID_PLACEMENT"
  | "IO";

export class ShardError extends DeepshardError<ShardErrorCode> {
  override name = "ShardError";
}

export interface ShardFile {
  /** File name inside the model directory. */
  name: string;
  size: number;
  /** Index of the file's first chunk; a file's chunks never hold bytes of another file. */
  firstChunk: number;
  chunkCount: number;
}

/**
 * Everything needed to fetch, verify and reassemble a model. The weights id commits to the chunk
 * bytes; whoever publishes a weights id publishes `chunkCount` (and this layout) beside it.
 */
export interface ShardManifest {
  version: 1;
  /** Hex Merkle root over every chunk, files in order. */
  weightsId: string;
  chunkSize: number;
  chunkCount: number;
  totalSize: number;
  files: ShardFile[];
}

export interface ChunkLocation {
  file: string;
  /** Byte offset inside the file. */
  offset: number;
  length: number;
}

export interface ChunkWithProof {
  index: number;
  bytes: Uint8Array;
  proof: Uint8Array[];
}

const toHex = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

function fromHex(hex: string, what: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new ShardError("INVALID_MANIFEST", `${what} is not a 32-byte lowercase hex string`);
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** The files of a model directory, in the order they are chunked. */
export async function modelFiles(dir: string): Promise<string[]> {
  const ckpt = await openCheckpoint(dir);
  try {
    const shards = [...new Set([...ckpt.tensors.values()].map((t) => t.file))].sort();
    const hasIndex = await stat(join(dir, INDEX_FILE)).then(
      (s) => s.isFile(),
      () => false,
    );
    return hasIndex ? [INDEX_FILE, ...shards] : shards.length > 0 ? shards : [SINGLE_FILE];
  } finally {
    await ckpt.close();
  }
}

/** Where chunk `index` lives. */
export function chunkLocation(manifest: ShardManifest, index: number): ChunkLocation {
  if (!Number.isSafeInteger(index) || index < 0 || index >= manifest.chunkCount) {
    throw new ShardError("CHUNK_OUT_OF_RANGE", `chunk ${index} is outside 0..${manifest.chunkCount - 1}`, {
      meta: { index },
    });
  }
  // Files are few; a linear scan is simpler than a search and as fast.
  for (const f of manifest.files) {
    if (index < f.firstChunk + f.chunkCount) {
      const offset = (index - f.firstChunk) * manifest.chunkSize;
      return { file: f.name, offset, length: Math.min(manifest.chunkSize, f.size - offset) };
    }
  }
  throw new ShardError("INVALID_MANIFEST", "manifest files do not cover its chunk count");
}

/** Checks a manifest's internal consistency (from an untrusted peer, say) and returns it typed. */
export function validateManifest(value: unknown): ShardManifest {
  const bad = (why: string): never => {
    throw new ShardError("INVALID_MANIFEST", `invalid shard manifest: ${why}`);
  };
  if (typeof value !== "object" || value === null) bad("not an object");
  const m = value as Record<string, unknown>;
  if (m.version !== 1) bad("unsupported version");
  if (typeof m.weightsId !== "string") bad("weightsId is not a string");
  fromHex(m.weightsId as string, "weightsId");
  const ints = ["chunkSize", "chunkCount", "totalSize"] as const;
  for (const k of ints) if (!Number.isSafeInteger(m[k]) || (m[k] as number) < 0) bad(`${k} is not a count`);
  if ((m.chunkSize as number) === 0 || (m.chunkSize as number) > MAX_CHUNK_SIZE)
    bad("chunkSize is out of range");
  if ((m.chunkCount as number) > MAX_CHUNK_COUNT) bad(`more than ${MAX_CHUNK_COUNT} chunks`);
  if (!Array.isArray(m.files) || m.files.length === 0) bad("no files");
  let chunk = 0;
  let total = 0;
  const names = new Set<string>();
  for (const f of m.files as unknown[]) {
    const file = f as Record<string, unknown>;
    if (typeof file?.name !== "string" || !/^[^/\\]+$/.test(file.name) || file.name.startsWith(".")) {
      bad("a file name is not a plain name");
    }
    const name = file.name as string;
    if (names.has(name)) bad(`file ${name} is listed twice`);
    names.add(name);
    for (const k of ["size", "firstChunk", "chunkCount"]) {
      if (!Number.isSafeInteger(file[k]) || (file[k] as number) < 0) bad(`file ${name} ${k} is not a count`);
    }
    if (file.firstChunk !== chunk) bad(`file ${name} does not start at chunk ${chunk}`);
    if (file.chunkCount !== Math.ceil((file.size as number) / (m.chunkSize as number))) {
      bad(`file ${name} chunk count does not match its size`);
    }
    chunk += file.chunkCount as number;
    total += file.size as number;
  }
  if (chunk !== m.chunkCount) bad("files do not add up to chunkCount");
  if (total !== m.totalSize) bad("files do not add up to totalSize");
  return {
    version: 1,
    weightsId: m.weightsId as string,
    chunkSize: m.chunkSize as number,
    chunkCount: m.chunkCount as number,
    totalSize: m.totalSize as number,
    files: (m.files as ShardFile[]).map((f) => ({
      name: f.name,
      size: f.size,
      firstChunk: f.firstChunk,
      chunkCount: f.chunkCount,
    })),
  };
}

/** Whether `bytes` with `proof` is chunk `index` of the model `manifest` describes. */
export function verifyChunk(
  manifest: ShardManifest,
  index: number,
  bytes: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(index) || index < 0 || index >= manifest.chunkCount) return false;
  if (bytes.byteLength !== chunkLocation(manifest, index).length) return false;
  return verifyMerkleProof(
    fromHex(manifest.weightsId, "weightsId"),
    bytes,
    index,
    manifest.chunkCount,
    proof,
  );
}

export interface ChunkOptions {
  chunkSize?: number;
  /** Files to chunk, in order (default: `modelFiles(dir)`, i.e. the index then the shards, or model.safetensors). */
  files?: string[];
}

/**
 * A model directory cut into chunks: serves chunk bytes with inclusion proofs. Keeps every level of
 * the Merkle tree (64 bytes per chunk), so a proof costs log2(n) lookups and no hashing.
 */
export class ChunkedWeights {
  readonly dir: string;
  readonly manifest: ShardManifest;
  readonly #levels: Uint8Array[][];

  private constructor(dir: string, manifest: ShardManifest, levels: Uint8Array[][]) {
    this.dir = dir;
    this.manifest = manifest;
    this.#levels = levels;
  }

  /** Reads every file once, hashing chunks as they stream by. */
  static async open(dir: string, options: ChunkOptions = {}): Promise<ChunkedWeights> {
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize > MAX_CHUNK_SIZE) {
      throw new ShardError("INVALID_MANIFEST", `chunk size must be a positive integer, got ${chunkSize}`);
    }
    const names = options.files ?? (await modelFiles(dir));
    const leaves: Uint8Array[] = [];
    const builder = new MerkleBuilder();
    const files: ShardFile[] = [];
    let totalSize = 0;
    for (const name of names) {
      const firstChunk = leaves.length;
      const handle = await openFile(join(dir, name), "r");
      try {
        const { size } = await handle.stat();
        const buffer = new Uint8Array(chunkSize);
        for (let offset = 0; offset < size; offset += chunkSize) {
          const length = Math.min(chunkSize, size - offset);
          await readExactly(handle, buffer.subarray(0, length), offset);
          const leaf = merkleLeafHash(buffer.subarray(0, length));
          leaves.push(leaf);
          builder.addLeafHash(leaf);
        }
        files.push({ name, size, firstChunk, chunkCount: leaves.length - firstChunk });
        totalSize += size;
      } finally {
        await handle.close();
      }
    }
    const manifest: ShardManifest = {
      version: 1,
      weightsId: toHex(builder.root()),
      chunkSize,
      chunkCount: leaves.length,
      totalSize,
      files,
    };
    return new ChunkedWeights(dir, manifest, treeLevels(leaves));
  }

  get weightsId(): string {
    return this.manifest.weightsId;
  }

  /** Leaf hashes, one per chunk. */
  get leafHashes(): readonly Uint8Array[] {
    return this.#levels[0]!;
  }

  /** The RFC 6962 audit path of chunk `index` (as `merkleProof` from @deepshard/protocol gives it). */
  proof(index: number): Uint8Array[] {
    chunkLocation(this.manifest, index);
    const proof: Uint8Array[] = [];
    let i = index;
    for (const level of this.#levels) {
      if (level.length === 1) break;
      const sibling = i ^ 1;
      if (sibling < level.length) proof.push(level[sibling]!);
      i >>= 1;
    }
    return proof;
  }

  async readChunk(index: number): Promise<Uint8Array> {
    const loc = chunkLocation(this.manifest, index);
    const handle = await openFile(join(this.dir, loc.file), "r");
    try {
      const bytes = new Uint8Array(loc.length);
      await readExactly(handle, bytes, loc.offset);
      return bytes;
    } finally {
      await handle.close();
    }
  }

  async chunk(index: number): Promise<ChunkWithProof> {
    return { index, bytes: await this.readChunk(index), proof: this.proof(index) };
  }
}

/** Every level of the tree, leaves first; a node without a sibling is carried up (RFC 6962). */
function treeLevels(leaves: Uint8Array[]): Uint8Array[][] {
  const levels = [leaves];
  let level = leaves;
  while (level.length > 1) {
    const up: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      up.push(i + 1 < level.length ? merkleNodeHash(level[i]!, level[i + 1]!) : level[i]!);
    }
    levels.push(up);
    level = up;
  }
  return levels;
}

async function openFile(path: string, flags: string): Promise<FileHandle> {
  try {
    return await open(path, flags);
  } catch (cause) {
    throw new ShardError("IO", `cannot open ${path}`, { cause, meta: { path } });
  }
}

async function readExactly(handle: FileHandle, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const { bytesRead } = await handle.read(target, done, target.byteLength - done, position + done);
    if (bytesRead === 0) throw new ShardError("IO", "file is shorter than its manifest says");
    done += bytesRead;
  }
}

/**
 * Rebuilds a model's files from chunks that arrive in any order, from anyone: each chunk is checked
 * against the weights id with its proof before a byte is written, and the files appear (atomically
 * renamed from temp files) only when every chunk is in.
 */
export class Reassembler {
  readonly manifest: ShardManifest;
  readonly dir: string;
  readonly #root: Uint8Array;
  readonly #have: Uint8Array;
  #received = 0;
  /** Promises, so that concurrent adds to one file share a single open (a second "w+" would truncate). */
  #handles = new Map<string, Promise<FileHandle>>();
  /** Chunks being written, so a chunk added twice at once is written and counted once. */
  #writing = new Set<number>();
  #temps = new Map<string, string>();
  readonly #tag = randomBytes(6).toString("hex");

  constructor(manifest: ShardManifest, dir: string) {
    this.manifest = validateManifest(manifest);
    this.dir = dir;
    this.#root = fromHex(manifest.weightsId, "weightsId");
    this.#have = new Uint8Array(manifest.chunkCount);
  }

  /** Chunk indices not yet received. */
  missing(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#have.length; i++) if (!this.#have[i]) out.push(i);
    return out;
  }

  get complete(): boolean {
    return this.#received === this.manifest.chunkCount;
  }

  /** Verifies and stores one chunk; a bad chunk is refused (ShardError INVALID_CHUNK naming its index). */
  async add(index: number, bytes: Uint8Array, proof: readonly Uint8Array[]): Promise<void> {
    const loc = chunkLocation(this.manifest, index);
    if (bytes.byteLength !== loc.length) {
      throw new ShardError(
        "INVALID_CHUNK",
        `chunk ${index} has ${bytes.byteLength} bytes, expected ${loc.length}`,
        {
          meta: { index },
        },
      );
    }
    if (!verifyMerkleProof(this.#root, bytes, index, this.manifest.chunkCount, proof)) {
      throw new ShardError(
        "INVALID_CHUNK",
        `chunk ${index} does not match weights id ${this.manifest.weightsId}`,
        {
          details: "its bytes or proof are wrong: fetch it from another holder",
          meta: { index },
        },
      );
    }
    if (this.#have[index] || this.#writing.has(index)) return;
    this.#writing.add(index);
    try {
      const handle = await this.#handle(loc.file);
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, loc.offset + done);
        done += bytesWritten;
      }
      this.#have[index] = 1;
      this.#received++;
    } finally {
      this.#writing.delete(index);
    }
  }

  /** Fsyncs and renames every file into place; fails listing the missing chunks if any. */
  async finish(): Promise<string[]> {
    const missing = this.missing();
    if (missing.length > 0) {
      throw new ShardError("MISSING_CHUNKS", `${missing.length} chunks are missing`, {
        details: `first missing: ${missing.slice(0, 10).join(", ")}`,
        meta: { missing },
      });
    }
    await mkdir(this.dir, { recursive: true });
    const written: string[] = [];
    for (const f of this.manifest.files) {
      const handle = await this.#handle(f.name);
      await handle.truncate(f.size);
      await handle.sync();
      await handle.close();
      this.#handles.delete(f.name);
      await rename(this.#temps.get(f.name)!, join(this.dir, f.name));
      written.push(f.name);
    }
    return written;
  }

  /** Closes and deletes the temp files of an unfinished reassembly. */
  async abort(): Promise<void> {
    for (const [name, handle] of this.#handles) {
      await handle.then((h) => h.close()).catch(() => {});
      await unlink(this.#temps.get(name)!).catch(() => {});
    }
    this.#handles.clear();
  }

  #handle(name: string): Promise<FileHandle> {
    let handle = this.#handles.get(name);
    if (!handle) {
      const temp = join(this.dir, `.${name}.${this.#tag}.part`);
      this.#temps.set(name, temp);
      handle = mkdir(this.dir, { recursive: true }).then(() => openFile(temp, "w+"));
      this.#handles.set(name, handle);
    }
    return handle;
  }
}

/** Fetches every chunk through `fetch` (from any holder), verifying each, and writes the model files. */
export async function reassemble(
  manifest: ShardManifest,
  dir: string,
  fetch: (index: number) => Promise<{ bytes: Uint8Array; proof: Uint8Array[] }>,
): Promise<string[]> {
  const r = new Reassembler(manifest, dir);
  try {
    for (let i = 0; i < manifest.chunkCount; i++) {
      const { bytes, proof } = await fetch(i);
      await r.add(i, bytes, proof);
    }
    return await r.finish();
  } catch (err) {
    await r.abort();
    throw err;
  }
}

// ---- Placement: rendezvous (highest random weight) hashing ----

/**
 * Ranks nodes for chunks by rendezvous score: the first 48 bits of SHA-256(weights id ‖ chunk index
 * as u64 ‖ node id). Every node computes the same scores, so placement needs no coordination, and a
 * node joining or leaving changes only the chunks for which it is among the top r.
 */
function ranker(weightsId: string, nodes: readonly string[]): (index: number) => string[] {
  const id = fromHex(weightsId, "weightsId");
  // One reusable message per node: only the index bytes change between chunks.
  const scores = nodes.map((node) => {
    const nodeBytes = Buffer.from(node, "utf8");
    const message = Buffer.alloc(40 + nodeBytes.length);
    message.set(id);
    message.set(nodeBytes, 40);
    return { node, message, s: 0 };
  });
  return (index) => {
    for (const x of scores) {
      x.message.writeUInt32BE(Math.floor(index / 2 ** 32), 32);
      x.message.writeUInt32BE(index >>> 0, 36);
      x.s = nodeHash("sha256", x.message, "buffer").readUIntBE(0, 6);
    }
    scores.sort((a, b) => b.s - a.s || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    return scores.map((x) => x.node);
  };
}

function checkPlacement(nodes: readonly string[], replication: number): void {
  if (!Number.isSafeInteger(replication) || replication < 1) {
    throw new ShardError(
      "INVALID_PLACEMENT",
      `replication factor must be a positive integer, got ${replication}`,
    );
  }
  if (new Set(nodes).size !== nodes.length)
    throw new ShardError("INVALID_PLACEMENT", "node ids must be unique");
}

/** Nodes ranked for one chunk, best first (ties, with probability 2^-48, broken by node id). */
export function rankNodes(weightsId: string, index: number, nodes: readonly string[]): string[] {
  return ranker(weightsId, nodes)(index);
}

/** The r holders of every chunk (fewer when there are fewer nodes), best-ranked first. */
export function placeChunks(
  weightsId: string,
  chunkCount: number,
  nodes: readonly string[],
  replication: number,
): string[][] {
  checkPlacement(nodes, replication);
  const rank = ranker(weightsId, nodes);
  const out: string[][] = [];
  for (let i = 0; i < chunkCount; i++) out.push(rank(i).slice(0, replication));
  return out;
}

/** Chunk indices each node holds. */
export function chunksByNode(placement: readonly string[][]): Map<string, number[]> {
  const byNode = new Map<string, number[]>();
  placement.forEach((holders, i) => {
    for (const n of holders) {
      const list = byNode.get(n);
      if (list) list.push(i);
      else byNode.set(n, [i]);
    }
  });
  return byNode;
}

export interface Transfer {
  chunk: number;
  from: string;
  to: string;
}

export interface RepairPlan {
  /** Copies that restore r holders per chunk under the new node set. */
  transfers: Transfer[];
  /** Copies that the new placement no longer needs (safe to delete once transfers are done). */
  drops: { chunk: number; node: string }[];
  /** Chunks whose every holder is gone: they must come from outside (another network, a backup). */
  lost: number[];
}

/**
 * What to copy when the node set changes from `before` to `after` (nodes leaving, joining, or
 * both): for each chunk, every new holder receives it from a surviving old holder. Sources rotate
 * among the survivors so one node does not serve every copy.
 */
export function repairPlan(
  weightsId: string,
  chunkCount: number,
  before: readonly string[],
  after: readonly string[],
  replication: number,
): RepairPlan {
  checkPlacement(before, replication);
  checkPlacement(after, replication);
  const alive = new Set(after);
  const plan: RepairPlan = { transfers: [], drops: [], lost: [] };
  const load = new Map<string, number>();
  const rankBefore = ranker(weightsId, before);
  const rankAfter = ranker(weightsId, after);
  for (let i = 0; i < chunkCount; i++) {
    const old = rankBefore(i).slice(0, replication);
    const now = rankAfter(i).slice(0, replication);
    const survivors = old.filter((n) => alive.has(n));
    const receivers = now.filter((n) => !old.includes(n));
    for (const n of old) if (alive.has(n) && !now.includes(n)) plan.drops.push({ chunk: i, node: n });
    if (receivers.length === 0) continue;
    if (survivors.length === 0) {
      plan.lost.push(i);
      continue;
    }
    for (const to of receivers) {
      // The least-loaded survivor serves, ties to the best-ranked: deterministic and spread out.
      let from = survivors[0]!;
      for (const s of survivors) if ((load.get(s) ?? 0) < (load.get(from) ?? 0)) from = s;
      load.set(from, (load.get(from) ?? 0) + 1);
      plan.transfers.push({ chunk: i, from, to });
    }
  }
  return plan;
}

/** The repair plan when `leaving` leaves `nodes`. */
export function repairAfterLeave(
  weightsId: string,
  chunkCount: number,
  nodes: readonly string[],
  leaving: string,
  replication: number,
): RepairPlan {
  return repairPlan(
    weightsId,
    chunkCount,
    nodes,
    nodes.filter((n) => n !== leaving),
    replication,
  );
}

// ---- Layer ranges: what a pipeline stage needs ----

export type TensorRole = "layer" | "embedding" | "final" | "head" | "other";

const LAYER = /(?:^|\.)(?:h|layers|blocks)\.(\d+)\./;
const EMBEDDING = /(?:^|\.)(?:wte|wpe|embed_tokens|embed_positions|word_embeddings)\./;
const FINAL = /(?:^|\.)(?:ln_f|norm|final_layernorm|final_layer_norm)\./;
const HEAD = /^(?:lm_head|output)\./;

/** What a Hugging Face tensor name is: a block's (with its layer index), an embedding, the final norm, the head. */
export function tensorRole(name: string): { role: TensorRole; layer?: number } {
  const m = LAYER.exec(name);
  if (m) return { role: "layer", layer: Number(m[1]) };
  if (HEAD.test(name)) return { role: "head" };
  if (EMBEDDING.test(name)) return { role: "embedding" };
  if (FINAL.test(name)) return { role: "final" };
  return { role: "other" };
}

/** Number of blocks: one more than the highest layer index among `names`. */
export function countLayers(names: Iterable<string>): number {
  let n = 0;
  for (const name of names) {
    const { layer } = tensorRole(name);
    if (layer !== undefined) n = Math.max(n, layer + 1);
  }
  return n;
}

/**
 * The tensors a pipeline stage running blocks `first..last` (inclusive) needs: those blocks, the
 * embeddings when it is the first stage, the final norm and head when it is the last (plus the token
 * embedding when the head is tied to it, i.e. there is no `lm_head`). Tensors of unknown role go to
 * every stage: loading too much is safe, too little is not. Works for GPT-2 (`transformer.h.{i}.`)
 * and Llama (`model.layers.{i}.`) naming.
 */
export function tensorsForLayers(
  names: readonly string[],
  first: number,
  last: number,
  numLayers: number = countLayers(names),
): string[] {
  if (!isLayerRange(first, last, numLayers)) {
    throw new ShardError("INVALID_PLACEMENT", `layer range ${first}..${last} is outside 0..${numLayers - 1}`);
  }
  const isFirst = first === 0;
  const isLast = last === numLayers - 1;
  const tied = !names.some((n) => tensorRole(n).role === "head");
  return names.filter((name) => {
    const { role, layer } = tensorRole(name);
    switch (role) {
      case "layer":
        return layer! >= first && layer! <= last;
      case "embedding":
        // Position embeddings are only for the input; a tied head reuses the token embedding.
        return isFirst || (isLast && tied && !/(?:wpe|embed_positions)\./.test(name));
      case "final":
      case "head":
        return isLast;
      default:
        return true;
    }
  });
}

/**
 * Chunk indices covering byte ranges of the model's files: what a node must fetch to read those
 * bytes (for example the tensors from `tensorsForLayers`, plus each file's header).
 */
export function chunksForRanges(manifest: ShardManifest, ranges: Iterable<ChunkLocation>): number[] {
  const out = new Set<number>();
  for (const r of ranges) {
    const f = manifest.files.find((x) => x.name === r.file);
    if (!f) throw new ShardError("INVALID_MANIFEST", `file ${r.file} is not in the manifest`);
    if (r.length === 0) continue;
    if (r.offset < 0 || r.offset + r.length > f.size) {
      throw new ShardError("CHUNK_OUT_OF_RANGE", `range ${r.offset}+${r.length} is outside ${r.file}`);
    }
    const a = Math.floor(r.offset / manifest.chunkSize);
    const b = Math.floor((r.offset + r.length - 1) / manifest.chunkSize);
    for (let c = a; c <= b; c++) out.add(f.firstChunk + c);
  }
  return [...out].sort((x, y) => x - y);
}

/**
 * The chunks a pipeline stage for blocks `first..last` must fetch from a checkpoint laid out as
 * `manifest` describes: its tensors, the header of every file holding one, and the index file.
 */
export function chunksForLayers(
  manifest: ShardManifest,
  checkpoint: Checkpoint,
  first: number,
  last: number,
): number[] {
  const names = tensorsForLayers([...checkpoint.tensors.keys()], first, last);
  const ranges: ChunkLocation[] = [];
  const files = new Set<string>();
  for (const name of names) {
    const info = checkpoint.info(name);
    files.add(info.file);
    ranges.push({ file: info.file, offset: info.byteOffset, length: info.byteLength });
  }
  for (const file of files) ranges.push({ file, offset: 0, length: checkpoint.files.get(file)!.dataOffset });
  const index = manifest.files.find((f) => f.name === INDEX_FILE);
  if (index) ranges.push({ file: INDEX_FILE, offset: 0, length: index.size });
  return chunksForRanges(manifest, ranges);
}
