/**
 * The blob layer on loopback: a data blob fetched in 1 MiB ranges into a BlobStore (hashed while it
 * streams, fsynced, renamed), and weights (1 MiB chunks) fetched from 3 holders with replication 2,
 * each chunk Merkle-verified and written by the Reassembler.
 */
import { randomFillSync } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchModule, type BenchRow, medianMs } from "@deepshard/protocol";
import { createHost, type Host } from "@deepshard/protocol/host";
import { ChunkedWeights, placeChunks } from "@deepshard/tensor";
import { BlobClient, BlobService, BlobStore, ChunkStore } from "../src/node/blobs/index.ts";

const CHAIN = "bench";

const bench: BenchModule = async (ctx) => {
  const size = ctx.quick ? 8 << 20 : 32 << 20;
  const repeats = ctx.quick ? 2 : 3;
  const mib = size / 2 ** 20;
  const dir = await mkdtemp(join(tmpdir(), "ds-bench-blobs-"));
  const hosts: Host[] = [];
  try {
    for (let i = 0; i < 4; i++) hosts.push(await createHost());
    const [client, ...holders] = hosts as [Host, Host, Host, Host];
    for (const h of holders) await client.dial(h.addresses()[0]!);
    const data = randomFillSync(new Uint8Array(size));

    const stores = await Promise.all(
      holders.map(async (h, i) => {
        const blobs = await BlobStore.open(join(dir, `h${i}`));
        const chunks = await ChunkStore.open(join(dir, `h${i}`));
        await BlobService.start(h, { chainId: CHAIN, blobs, chunks, canServe: () => true });
        return { blobs, chunks };
      }),
    );
    const { hash } = await stores[0]!.blobs.put(data, { maxBytes: size });
    const fetcher = new BlobClient(client, { chainId: CHAIN });
    const mine = await BlobStore.open(join(dir, "client"));
    const blobMs = await medianMs(repeats, async () => {
      await mine.delete(hash);
      await fetcher.fetchBlobTo(mine, hash, size, [holders[0]!.peerId]);
    });

    const model = join(dir, "model");
    await mkdir(model);
    await writeFile(join(model, "model.safetensors"), data);
    const weights = await ChunkedWeights.open(model, { files: ["model.safetensors"] });
    const ids = holders.map((h) => h.peerId.toString());
    const placement = placeChunks(weights.weightsId, weights.manifest.chunkCount, ids, 2);
    for (let i = 0; i < holders.length; i++) {
      const held = placement.flatMap((hs, c) => (hs.includes(ids[i]!) ? [c] : []));
      await stores[i]!.chunks.putFrom(weights, held);
    }
    const map = new Map(placement.map((hs, c) => [c, hs.map((id) => holders[ids.indexOf(id)]!.peerId)]));
    let run = 0;
    const weightsMs = await medianMs(repeats, async () => {
      await fetcher.fetchWeights(weights.manifest, map, { dir: join(dir, `fetched${run++}`) });
    });

    const rows: BenchRow[] = [
      {
        package: "cli",
        metric: `blob fetch into store, ${mib} MiB, 1 holder`,
        value: mib / (blobMs / 1000),
        unit: "MiB/s",
      },
      {
        package: "cli",
        metric: `weights fetch, ${mib} MiB in 1 MiB chunks, 3 holders (r=2)`,
        value: mib / (weightsMs / 1000),
        unit: "MiB/s",
      },
    ];
    for (const r of rows) ctx.log(`${r.metric}: ${r.value.toFixed(1)} ${r.unit}`);
    return rows;
  } finally {
    for (const h of hosts) await h.stop();
    await rm(dir, { recursive: true, force: true });
  }
};

export default bench;
