/**
 * The storage role: keeps the chunks that rendezvous hashing over the storage set places on this
 * node, for the genesis weights and the canonical weights, with REPLICATION (2) holders per chunk.
 * It reconciles after every committed block that changes the canonical weights and whenever the
 * directory changes: fetches the chunks placed on it that it lacks, from the peers announcing them.
 * When a storage node leaves (silent for 4 announcement intervals), the repair plan of the tensor
 * package says which survivor sends each lost copy to which new holder; this node takes the copies
 * addressed to it from the planned source first. A chunk placed elsewhere is deleted once every
 * node it is placed on announces it. Chunks go out only through the daemon's blob service, whose
 * `canServe` hook lets only license holders and active validators have them.
 *
 * Announcements travel over gossipsub, which relays a topic only through peers subscribed to it:
 * nodes running these roles must be connected to each other or through nodes that run one (in a
 * devnet every validator also stores).
 */

import type { RequestTarget } from "@deepshard/protocol/host";
import { placeChunks, repairPlan, type ShardManifest } from "@deepshard/tensor";
import type { NodeConfig } from "../../config.ts";
import type { RoleContext, RoleService } from "../../service.ts";
import { type DirectoryOptions, inRanges, REPLICATION, WeightsDirectory } from "./directory.ts";
import { countReceived, ModelCache } from "./models.ts";
import { registerWeightsRoutes } from "./routes.ts";

export interface StorageOptions extends DirectoryOptions {}

export interface StorageStatus {
  weights: {
    weightsId: string;
    chunkCount: number;
    placed: number;
    held: number;
    storageSet: number;
  }[];
  repairs: number;
  lastError: string | null;
}

const ZERO_ID = "0".repeat(64);

export class StorageService implements RoleService {
  readonly name = "storage";
  readonly #options: StorageOptions;
  #ctx: RoleContext | undefined;
  #directory: WeightsDirectory | undefined;
  #cache: ModelCache | undefined;
  readonly #offs: (() => void)[] = [];
  /** The storage set each weights id was last placed over: a node missing from the next one has left. */
  readonly #lastSet = new Map<string, string[]>();
  readonly #status: StorageStatus = { weights: [], repairs: 0, lastError: null };
  #running: Promise<void> | undefined;
  #again = false;
  #lastCanonical = "";
  /** Until then the node has not heard the other storage nodes yet: placing now would take too much. */
  #warmUntil = 0;

  constructor(_config: NodeConfig, options: StorageOptions = {}) {
    this.#options = options;
  }

  async start(ctx: RoleContext): Promise<void> {
    this.#ctx = ctx;
    const directory = WeightsDirectory.acquire(ctx, this.#options);
    this.#directory = directory;
    this.#cache = new ModelCache(ctx.paths.root, ctx.stores.chunks, ctx.stores.blobClient, directory);
    registerWeightsRoutes(ctx, directory);
    ctx.api.route("GET", "/storage/status", () => this.status());
    this.#offs.push(
      directory.onChange(() => this.kick()),
      ctx.ledger.onCommit(() => {
        const canonical = ctx.ledger.state().tables.meta.get("meta")!.canonicalWeightsId;
        if (canonical !== this.#lastCanonical) this.kick();
      }),
    );
    // Peers announce on their own timers; a periodic pass also retries what failed before.
    const timer = setInterval(() => this.kick(), directory.announceIntervalMs);
    timer.unref();
    this.#offs.push(() => clearInterval(timer));
    this.#warmUntil = Date.now() + 1.5 * directory.announceIntervalMs;
    const warm = setTimeout(() => this.kick(), 1.5 * directory.announceIntervalMs);
    warm.unref();
    this.#offs.push(() => clearTimeout(warm));
  }

  async stop(): Promise<void> {
    for (const off of this.#offs.splice(0)) off();
    await this.#running?.catch(() => {});
    this.#directory?.release();
  }

  status(): StorageStatus {
    return structuredClone(this.#status);
  }

  /** Reconciles soon; calls during a pass make one more pass. */
  kick(): void {
    if (Date.now() < this.#warmUntil || this.#ctx?.signal.aborted) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#reconcile().catch((err: unknown) => {
          if (this.#ctx?.signal.aborted) return;
          this.#status.lastError = err instanceof Error ? err.message : String(err);
          this.#ctx?.logger.warn("storage reconcile failed", { error: this.#status.lastError });
        });
      } while (this.#again && !this.#ctx?.signal.aborted);
    })().finally(() => {
      this.#running = undefined;
    });
  }

  /** The weights this node stores: genesis and canonical (they differ after the first round). */
  #targets(): string[] {
    const state = this.#ctx!.ledger.state();
    const meta = state.tables.meta.get("meta")!;
    this.#lastCanonical = meta.canonicalWeightsId;
    const genesis = [...state.tables.weights.values()].find((w) => w.round === -1)?.weightsId;
    return [...new Set([genesis, meta.canonicalWeightsId])].filter(
      (id): id is string => id !== undefined && id !== ZERO_ID,
    );
  }

  async #reconcile(): Promise<void> {
    const ctx = this.#ctx!;
    const directory = this.#directory!;
    const views: StorageStatus["weights"] = [];
    for (const weightsId of this.#targets()) {
      if (ctx.signal.aborted) return;
      const manifest = await this.#manifest(weightsId);
      if (!manifest) continue;
      const set = directory.storageSet(weightsId);
      const self = directory.selfPeerId;
      if (!set.includes(self)) {
        views.push({
          weightsId,
          chunkCount: manifest.chunkCount,
          placed: 0,
          held: 0,
          storageSet: set.length,
        });
        continue;
      }
      const placement = placeChunks(weightsId, manifest.chunkCount, set, REPLICATION);
      const mine = placement.flatMap((nodes, i) => (nodes.includes(self) ? [i] : []));
      const preferred = this.#repairSources(weightsId, manifest.chunkCount, set);
      const known = directory.holders(weightsId, manifest.chunkCount);
      const holders = new Map<number, RequestTarget[]>();
      for (const i of mine) {
        if (ctx.stores.chunks.has(weightsId, i)) continue;
        const list = [...(known.get(i) ?? [])];
        const from = preferred.get(i);
        if (from) {
          const target = directory.target(from);
          list.sort((a, b) => Number(String(b) === String(target)) - Number(String(a) === String(target)));
        }
        if (list.length > 0) holders.set(i, list);
      }
      if (holders.size > 0) {
        const peers = await ctx.stores.blobClient.fetchChunksInto(
          ctx.stores.chunks,
          manifest,
          holders.keys(),
          holders,
          { signal: ctx.signal },
        );
        countReceived(ctx.metrics, peers);
        ctx.events.emit({ type: "storage.stored", weightsId, chunks: holders.size });
        directory.announceSoon();
      }
      const dropped = await this.#drop(weightsId, placement, new Set(mine));
      if (dropped > 0) directory.announceSoon();
      views.push({
        weightsId,
        chunkCount: manifest.chunkCount,
        placed: mine.length,
        held: mine.filter((i) => ctx.stores.chunks.has(weightsId, i)).length,
        storageSet: set.length,
      });
    }
    this.#status.weights = views;
    this.#status.lastError = null;
  }

  /**
   * Deletes the chunks held here that placement puts elsewhere, once every node it puts them on
   * announces holding them (so a move never leaves fewer than REPLICATION copies).
   */
  async #drop(weightsId: string, placement: string[][], mine: Set<number>): Promise<number> {
    const ctx = this.#ctx!;
    const peers = new Map(this.#directory!.peers().map((p) => [p.peerId, p]));
    let dropped = 0;
    for (const i of ctx.stores.chunks.indices(weightsId)) {
      if (mine.has(i)) continue;
      const covered = placement[i]!.every((id) => {
        const ranges = peers.get(id)?.holdings.get(weightsId)?.ranges;
        return ranges !== undefined && inRanges(ranges, i);
      });
      if (!covered) continue;
      await ctx.stores.chunks.delete(weightsId, i);
      dropped++;
    }
    return dropped;
  }

  /**
   * When nodes left the storage set since the last pass: the repair plan's source for each copy
   * this node must now take (chunk index → peer id of a surviving holder).
   */
  #repairSources(weightsId: string, chunkCount: number, set: string[]): Map<number, string> {
    const ctx = this.#ctx!;
    const before = this.#lastSet.get(weightsId);
    this.#lastSet.set(weightsId, set);
    const out = new Map<number, string>();
    if (!before) return out;
    const left = before.filter((n) => !set.includes(n));
    if (left.length === 0) return out;
    const plan = repairPlan(weightsId, chunkCount, before, set, REPLICATION);
    for (const t of plan.transfers) if (t.to === this.#directory!.selfPeerId) out.set(t.chunk, t.from);
    this.#status.repairs++;
    ctx.logger.info("storage nodes left: repairing", {
      weightsId,
      left: left.join(","),
      transfers: plan.transfers.length,
      mine: out.size,
      lost: plan.lost.length,
    });
    ctx.events.emit({
      type: "storage.repair",
      weightsId,
      left,
      transfers: plan.transfers.length,
      mine: out.size,
      lost: plan.lost.length,
    });
    return out;
  }

  async #manifest(weightsId: string): Promise<ShardManifest | undefined> {
    const local = this.#ctx!.stores.chunks.manifest(weightsId);
    if (local) return local;
    if (this.#directory!.announcers(weightsId).length === 0) return undefined;
    const manifest = await this.#cache!.fetchManifest(weightsId, this.#ctx!.signal);
    await this.#ctx!.stores.chunks.putManifest(manifest);
    return manifest;
  }
}
