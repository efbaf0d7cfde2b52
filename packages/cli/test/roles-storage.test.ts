/**
 * The storage role over real daemons: three storage nodes take their rendezvous share of the
 * genesis weights from the one node seeded with them (r = 2 per chunk); an account without a
 * license is refused chunks with a clear error and nothing is written for it; when the seeded
 * node stops, the two others re-replicate until each chunk has two holders again.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { placeChunks } from "@deepshard/tensor";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/node/daemon.ts";
import { REPLICATION } from "../src/node/roles/storage/directory.ts";
import {
  MAIN_BOND,
  makeWeightsNetwork,
  type RunningNode,
  SMALL_BOND,
  startWeightsNode,
  until,
  type WeightsNetwork,
} from "./roles-storage-fixture.ts";

let dir: string;
let net: WeightsNetwork;
const running: Daemon[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-storage-"));
  // 0: the main validator; 1–3: storage nodes (small validators, so holders serve them); 4: an
  // account with neither a bond nor a license.
  net = await makeWeightsNetwork(dir, [MAIN_BOND, SMALL_BOND, SMALL_BOND, SMALL_BOND, 0n]);
});

afterAll(async () => {
  for (const d of running.splice(0).reverse()) await d.stop(3_000);
  await rm(dir, { recursive: true, force: true });
});

async function start(i: number, options: Parameters<typeof startWeightsNode>[2]): Promise<RunningNode> {
  const node = await startWeightsNode(net, i, options);
  running.push(node.daemon);
  return node;
}

const peerOf = (d: Daemon) => d.ledger.host.peerId.toString();

/** Whether every node holds exactly the chunks placement puts on it, over `nodes`. */
function placed(nodes: Daemon[]): boolean {
  const { weightsId, chunkCount } = net.genesis;
  const ids = nodes.map(peerOf);
  const placement = placeChunks(weightsId, chunkCount, [...ids].sort(), REPLICATION);
  return nodes.every((d, k) => {
    const want = placement.flatMap((holders, i) => (holders.includes(ids[k]!) ? [i] : []));
    return d.stores.chunks.indices(weightsId).join() === want.join();
  });
}

describe("the storage role", () => {
  it("places the genesis weights with r = 2, refuses the unlicensed, and re-replicates when a holder leaves", async () => {
    const { weightsId, chunkCount } = net.genesis;
    expect(chunkCount).toBeGreaterThan(8);
    const main = await start(0, { roles: ["validator"] });
    const seed = await start(1, {
      roles: ["validator", "storage"],
      seedGenesis: true,
      bootstrap: [main.daemon],
    });
    const a = await start(2, { roles: ["validator", "storage"], bootstrap: [main.daemon, seed.daemon] });
    const b = await start(3, {
      roles: ["validator", "storage"],
      bootstrap: [main.daemon, seed.daemon, a.daemon],
    });
    await until(() => placed([seed.daemon, a.daemon, b.daemon]), 30_000);
    // Each holds a share, not everything (the seeded node dropped what others hold).
    for (const d of [seed.daemon, a.daemon, b.daemon]) {
      const n = d.stores.chunks.indices(weightsId).length;
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThan(chunkCount);
    }

    // An account without a license or a bond asks a holder for chunks: refused, nothing written.
    const stranger = await start(4, { roles: ["inference"], bootstrap: [main.daemon, a.daemon] });
    await until(() => stranger.daemon.ledger.host.peers().some((p) => p.toString() === peerOf(a.daemon)));
    const holders = new Map(Array.from({ length: chunkCount }, (_, i) => [i, [peerOf(a.daemon)]] as const));
    const out = join(dir, "stolen");
    const refused = stranger.daemon.stores.blobClient.fetchWeights(net.genesis, holders, { dir: out });
    await expect(refused).rejects.toMatchObject({ code: "NO_LICENSE" });
    await expect(refused).rejects.toThrow(/no license/);
    expect(a.daemon.stores.blobService.stats.refusedNoLicense).toBeGreaterThan(0);
    expect(a.daemon.stores.blobService.stats.chunkRequests).toBe(0);
    await expect(readdir(out)).rejects.toMatchObject({ code: "ENOENT" });
    expect(stranger.daemon.stores.chunks.weights()).toEqual([]);

    // The API reports the replication.
    const inspect = async (d: Daemon) =>
      (await (await request(`${d.apiUrl}/weights/${weightsId}`)).body.json()) as {
        replication: { min: number; underReplicated: number; storageSet: string[]; placed: number };
        holders: { peerId: string; chunks: number }[];
      };
    await until(async () => (await inspect(a.daemon)).replication.min >= REPLICATION);
    const before = await inspect(a.daemon);
    expect(before.replication.storageSet).toHaveLength(3);
    expect(before.replication.placed).toBe(chunkCount);

    // The seeded node leaves: the two others copy what it held to each other.
    running.splice(running.indexOf(seed.daemon), 1);
    await seed.daemon.stop(3_000);
    await until(() => placed([a.daemon, b.daemon]), 30_000);
    for (const d of [a.daemon, b.daemon]) expect(d.stores.chunks.indices(weightsId)).toHaveLength(chunkCount);
    const repairs = [...a.events, ...b.events].filter((e) => e.type === "storage.repair");
    expect(repairs.length).toBeGreaterThan(0);
    expect(repairs[0]).toMatchObject({ weightsId, left: [peerOf(seed.daemon)], lost: 0 });
    await until(async () => {
      const { replication } = await inspect(b.daemon);
      return replication.storageSet.length === 2 && replication.min === 2;
    });
    const after = await inspect(b.daemon);
    expect(after.replication).toMatchObject({ min: 2, underReplicated: 0, placed: chunkCount });
    expect(after.holders.map((h) => h.peerId).sort()).toEqual([peerOf(a.daemon), peerOf(b.daemon)].sort());
  }, 120_000);
});
