/**
 * Whole models on disk, by weights id: `<network>/models/<weightsId>/` holds config.json and the
 * safetensors files, complete (a model is assembled in a temp folder and renamed into place), so
 * its presence means it is whole and verified. A model comes from the local chunk store when it
 * holds every chunk, else from the holders the directory knows, in parallel, each chunk checked
 * against the weights id.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Reassembler, type ShardManifest, validateManifest } from "@deepshard/tensor";
import type { BlobClient, ChunkStore, FetchProgress, PeerStats } from "../../blobs/index.ts";
import { BlobError } from "../../blobs/index.ts";
import type { NodeMetrics } from "../../metrics.ts";
import { chunkModel } from "../../weights-id.ts";
import type { WeightsDirectory } from "./directory.ts";

export { chunkModel } from "../../weights-id.ts";

/** Adds a fetch's per-peer counts to the node's chunk-transfer metrics. */
export function countReceived(metrics: NodeMetrics, peers: Record<string, PeerStats>): void {
  for (const s of Object.values(peers)) {
    if (s.chunks > 0) metrics.chunkTransfers.inc({ direction: "received", outcome: "ok" }, s.chunks);
    if (s.failures > 0) metrics.chunkTransfers.inc({ direction: "received", outcome: "failed" }, s.failures);
    if (s.bytes > 0) metrics.chunkBytes.inc({ direction: "received" }, s.bytes);
  }
}

/** Stores a whole model folder's chunks in `store` (a node seeding the genesis weights, say). */
export async function importModel(
  store: ChunkStore,
  dir: string,
  options: { chunkSize?: number | undefined } = {},
): Promise<ShardManifest> {
  const weights = await chunkModel(dir, options);
  await store.putFrom(weights);
  return weights.manifest;
}

export interface EnsureOptions {
  signal?: AbortSignal;
  onProgress?: (p: FetchProgress) => void;
}

export interface EnsuredModel {
  dir: string;
  manifest: ShardManifest;
  /** Where it came from: already assembled, the local chunk store, or peers. */
  source: "cache" | "local" | "peers";
  peers: Record<string, { chunks: number; bytes: number; failures: number }>;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

export class ModelCache {
  readonly root: string;
  readonly #chunks: ChunkStore;
  readonly #client: BlobClient;
  readonly #directory: WeightsDirectory;
  readonly #inflight = new Map<string, Promise<EnsuredModel>>();

  constructor(networkRoot: string, chunks: ChunkStore, client: BlobClient, directory: WeightsDirectory) {
    this.root = join(networkRoot, "models");
    this.#chunks = chunks;
    this.#client = client;
    this.#directory = directory;
  }

  dirOf(weightsId: string): string {
    return join(this.root, weightsId);
  }

  has(weightsId: string): Promise<boolean> {
    return isDir(this.dirOf(weightsId));
  }

  /** Removes what a killed process left half-assembled. */
  async clean(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    for (const name of await readdir(this.root)) {
      if (name.startsWith(".tmp-")) await rm(join(this.root, name), { recursive: true, force: true });
    }
  }

  /** The model folder of `weightsId`, assembled or fetched first when needed (one at a time per id). */
  ensure(weightsId: string, options: EnsureOptions = {}): Promise<EnsuredModel> {
    let p = this.#inflight.get(weightsId);
    if (!p) {
      p = this.#ensure(weightsId, options).finally(() => this.#inflight.delete(weightsId));
      this.#inflight.set(weightsId, p);
    }
    return p;
  }

  /**
   * Moves a finished model folder into the cache (a trainer's result); a present one is kept. The
   * manifest is written beside it first, so a cached folder always has one.
   */
  async adopt(manifest: ShardManifest, dir: string): Promise<string> {
    const target = this.dirOf(manifest.weightsId);
    await mkdir(this.root, { recursive: true });
    if (await isDir(target)) {
      await rm(dir, { recursive: true, force: true });
      return target;
    }
    await writeFile(`${target}.json`, `${JSON.stringify(manifest)}\n`);
    try {
      await rename(dir, target);
    } catch (err) {
      // Another builder in this process (a trainer and a validator both need the base model) won the
      // race; the folder is named by its weights id, so theirs holds the same model.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      await rm(dir, { recursive: true, force: true });
    }
    return target;
  }

  /** A fresh temp folder under the cache (same file system, so it can be renamed into place). */
  async tempDir(): Promise<string> {
    const dir = join(this.root, `.tmp-${randomBytes(6).toString("hex")}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async #ensure(weightsId: string, options: EnsureOptions): Promise<EnsuredModel> {
    const dir = this.dirOf(weightsId);
    if (await isDir(dir)) {
      const manifest = validateManifest(JSON.parse(await readFile(`${dir}.json`, "utf8")));
      return { dir, manifest, source: "cache", peers: {} };
    }
    const tmp = await this.tempDir();
    try {
      const local = this.#chunks.manifest(weightsId);
      if (local && this.#chunks.indices(weightsId).length === local.chunkCount) {
        const r = new Reassembler(local, tmp);
        try {
          for (let i = 0; i < local.chunkCount; i++) {
            const c = await this.#chunks.get(weightsId, i);
            await r.add(i, c.bytes, c.proof);
          }
          await r.finish();
        } catch (err) {
          await r.abort();
          throw err;
        }
        return { dir: await this.adopt(local, tmp), manifest: local, source: "local", peers: {} };
      }
      const manifest = local ?? (await this.fetchManifest(weightsId, options.signal));
      const holders = this.#directory.holders(weightsId, manifest.chunkCount);
      const result = await this.#client.fetchWeights(manifest, holders, {
        dir: tmp,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      return { dir: await this.adopt(manifest, tmp), manifest, source: "peers", peers: result.peers };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /** The manifest of `weightsId` from peers announcing it; UNAVAILABLE when nobody does. */
  async fetchManifest(weightsId: string, signal?: AbortSignal): Promise<ShardManifest> {
    const peers = this.#directory
      .announcers(weightsId)
      .sort((a, b) => holdingSize(b, weightsId) - holdingSize(a, weightsId))
      .map((p) => this.#directory.target(p.peerId));
    if (peers.length === 0) {
      throw new BlobError("UNAVAILABLE", `no peer announces weights ${weightsId}`, {
        details: "holders announce themselves every few seconds; is a storage node or the trainer running?",
        meta: { weightsId },
      });
    }
    return this.#client.fetchManifest(weightsId, peers, signal ? { signal } : {});
  }
}

function holdingSize(
  p: { holdings: ReadonlyMap<string, { ranges: readonly (readonly [number, number])[] }> },
  id: string,
) {
  return (p.holdings.get(id)?.ranges ?? []).reduce((n, [s, e]) => n + e - s, 0);
}
