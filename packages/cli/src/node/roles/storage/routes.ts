/**
 * `GET /weights` (canonical weights, price, the network's accumulated value, history) and
 * `GET /weights/:id` (holders and replication health), added once per node by whichever of the
 * trainer, storage and inference roles runs: they all hold a weights directory.
 */
import { encodeAddress } from "@deepshard/protocol";
import { placeChunks } from "@deepshard/tensor";
import { ApiError } from "../../api.ts";
import type { RoleContext } from "../../service.ts";
import type { ReplicationHealth } from "./client.ts";
import { inRanges, REPLICATION, rangesSize, type WeightsDirectory } from "./directory.ts";

const registered = new WeakSet<object>();

export interface WeightsHolderView {
  peerId: string;
  address: string;
  roles: readonly string[];
  chunks: number;
  self: boolean;
  /** Milliseconds since its last announcement (0 for this node). */
  ageMs: number;
}

export function weightsOverview(ctx: RoleContext) {
  const state = ctx.ledger.state();
  const meta = state.tables.meta.get("meta")!;
  const history = [...state.tables.weights.values()]
    .sort((a, b) => a.index - b.index)
    .map((w) => ({ weightsId: w.weightsId, round: w.round, height: w.height, index: w.index }));
  return {
    height: meta.height,
    canonicalWeightsId: meta.canonicalWeightsId,
    genesisWeightsId: history.find((w) => w.round === -1)?.weightsId ?? "",
    price: meta.price,
    accumulatedValue: meta.accumulatedValue,
    history,
  };
}

export function inspectWeights(ctx: RoleContext, directory: WeightsDirectory, weightsId: string) {
  const state = ctx.ledger.state();
  const record = state.tables.weights.get(weightsId);
  const meta = state.tables.meta.get("meta")!;
  const selfHolding = directory.selfHoldings().find((h) => h.weightsId === weightsId);
  const peers = directory.announcers(weightsId);
  const chunkCount =
    ctx.stores.chunks.manifest(weightsId)?.chunkCount ??
    selfHolding?.chunkCount ??
    peers[0]?.holdings.get(weightsId)?.chunkCount;
  const now = Date.now();
  const holders: WeightsHolderView[] = peers.map((p) => ({
    peerId: p.peerId,
    address: encodeAddress(Buffer.from(p.account, "hex")),
    roles: p.roles,
    chunks: rangesSize(p.holdings.get(weightsId)!.ranges),
    self: false,
    ageMs: now - p.lastSeen,
  }));
  if (selfHolding) {
    holders.unshift({
      peerId: directory.selfPeerId,
      address: ctx.account.address,
      roles: ctx.config.roles,
      chunks: rangesSize(selfHolding.ranges),
      self: true,
      ageMs: 0,
    });
  }
  let replication: ReplicationHealth | null = null;
  if (chunkCount !== undefined) {
    const counts = new Array<number>(chunkCount).fill(0);
    const lists = [
      ...(selfHolding ? [selfHolding.ranges] : []),
      ...peers.map((p) => p.holdings.get(weightsId)!.ranges),
    ];
    for (let i = 0; i < chunkCount; i++) for (const r of lists) if (inRanges(r, i)) counts[i]!++;
    const storageSet = directory.storageSet(weightsId);
    replication = {
      target: REPLICATION,
      min: chunkCount > 0 ? Math.min(...counts) : 0,
      underReplicated: counts.filter((c) => c < REPLICATION).length,
      missing: counts.filter((c) => c === 0).length,
      storageSet,
      // Chunks whose placed holders (rendezvous hashing over the storage set) all announce them.
      placed:
        storageSet.length === 0
          ? 0
          : placeChunks(weightsId, chunkCount, storageSet, REPLICATION).filter((nodes, i) =>
              nodes.every((n) =>
                n === directory.selfPeerId
                  ? ctx.stores.chunks.has(weightsId, i)
                  : peers.some((p) => p.peerId === n && inRanges(p.holdings.get(weightsId)!.ranges, i)),
              ),
            ).length,
    };
  }
  return {
    weightsId,
    canonical: meta.canonicalWeightsId === weightsId,
    record: record ?? null,
    chunkCount: chunkCount ?? null,
    licensed: state.tables.licenses.has(`${directory.selfAccount}/${weightsId}`),
    holders,
    replication,
  };
}

/** Adds the weights routes unless another role of this node did. */
export function registerWeightsRoutes(ctx: RoleContext, directory: WeightsDirectory): void {
  if (registered.has(ctx.api)) return;
  registered.add(ctx.api);
  ctx.api.route("GET", "/weights", () => weightsOverview(ctx));
  ctx.api.route("GET", "/weights/:id", (req) => {
    const id = req.params.id!.toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(id))
      throw new ApiError(400, "BAD_WEIGHTS_ID", "a weights id is 64 hex digits");
    return inspectWeights(ctx, directory, id);
  });
}
