/**
 * The blob layer between real libp2p hosts over TCP on 127.0.0.1: data blobs in ranges, weights from
 * several holders with Merkle verification and fail-over (a corrupting holder, a holder killed
 * mid-fetch, a silent one), the license hook, and malformed requests.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  blobProtocol,
  publicKeyFromPeerId,
  weightsProtocol,
  weightsRequestCodec,
  weightsResponseCodec,
} from "@deepshard/protocol";
import { createHost, type Host, HostError } from "@deepshard/protocol/host";
import {
  ChunkedWeights,
  createModel,
  gpt2ConfigJson,
  initBackend,
  loadModel,
  placeChunks,
  saveModel,
  weightsDigest,
} from "@deepshard/tensor";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  BlobClient,
  BlobError,
  BlobService,
  type BlobServiceOptions,
  BlobStore,
  type ChunkFailure,
  ChunkStore,
  type FetchProgress,
} from "../src/node/blobs/index.ts";

const CHAIN = "blobs-test";
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let dir: string;
const closers: (() => Promise<void>)[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ds-blobs-net-"));
});
afterEach(async () => {
  // One at a time: hosts stopping together each wait out libp2p's grace period for the other.
  for (const close of closers.splice(0).reverse()) await close();
  await rm(dir, { recursive: true, force: true });
});

async function host(): Promise<Host> {
  const h = await createHost();
  closers.push(() => h.stop());
  return h;
}

interface Node {
  host: Host;
  blobs: BlobStore;
  chunks: ChunkStore;
  service: BlobService;
}

async function node(name: string, options: Partial<BlobServiceOptions> = {}): Promise<Node> {
  const h = await host();
  const blobs = await BlobStore.open(join(dir, name));
  const chunks = await ChunkStore.open(join(dir, name));
  const service = await BlobService.start(h, {
    chainId: CHAIN,
    blobs,
    chunks,
    canServe: () => true,
    ...options,
  });
  return { host: h, blobs, chunks, service };
}

/** Connects `from` to each of `to` (no discovery in tests). */
async function connect(from: Host, ...to: Host[]): Promise<void> {
  for (const t of to) await from.dial(t.addresses()[0]!);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

describe("data blobs", () => {
  it("moves a multi-range blob from an informant to a validator, verified, into memory and a store", async () => {
    const informant = await node("informant");
    const validator = await node("validator");
    await connect(validator.host, informant.host);
    const data = randomBytes(2.5 * 1024 * 1024);
    const { hash } = await informant.blobs.put(data, { maxBytes: 4 << 20 });

    const client = new BlobClient(validator.host, { chainId: CHAIN });
    const bytes = await client.fetchBlob(hash, data.length, [informant.host.peerId]);
    expect(sha256(bytes)).toBe(hash);
    expect(await client.fetchBlobTo(validator.blobs, hash, data.length, [informant.host.peerId])).toEqual({
      hash,
      size: data.length,
    });
    expect(Buffer.from(await validator.blobs.get(hash)).equals(data)).toBe(true);
    // Three 1 MiB ranges per fetch, twice.
    expect(informant.service.stats).toMatchObject({ blobRequests: 6, blobBytes: 2 * data.length });
  });

  it("refuses a blob larger than announced and stores nothing", async () => {
    const informant = await node("informant");
    const validator = await node("validator");
    await connect(validator.host, informant.host);
    const data = randomBytes(3000);
    const { hash } = await informant.blobs.put(data, { maxBytes: 1 << 20 });

    const client = new BlobClient(validator.host, { chainId: CHAIN });
    const err = await rejection(client.fetchBlobTo(validator.blobs, hash, 2000, [informant.host.peerId]));
    expect(err).toBeInstanceOf(BlobError);
    expect((err as BlobError).code).toBe("TOO_LARGE");
    expect((err as BlobError).message).toContain("larger than announced");
    expect((err as BlobError).meta).toMatchObject({ announced: 2000, held: 3000 });
    expect(validator.blobs.list()).toEqual([]);
    expect((await readdir(join(dir, "validator", "blobs"))).filter((n) => n !== ".tmp")).toEqual([]);
    expect(await readdir(join(dir, "validator", "blobs", ".tmp"))).toEqual([]);
    // An unknown blob is NOT_FOUND, and the informant keeps serving.
    const missing = await rejection(client.fetchBlob(sha256(Buffer.from("x")), 1, [informant.host.peerId]));
    expect((missing as BlobError).code).toBe("NOT_FOUND");
    expect(Buffer.from(await client.fetchBlob(hash, 3000, [informant.host.peerId])).equals(data)).toBe(true);
  });

  it("answers malformed requests with BAD_REQUEST and keeps serving", async () => {
    const holder = await node("holder");
    const other = await host();
    await connect(other, holder.host);
    for (const protocol of [blobProtocol(CHAIN), weightsProtocol(CHAIN)]) {
      for (const junk of [new Uint8Array([0xff, 0x00, 0x13]), new Uint8Array(0), randomBytes(200)]) {
        const err = await rejection(other.request(holder.host.peerId, protocol, junk));
        expect(err).toBeInstanceOf(HostError);
        expect((err as HostError).code).toBe("REMOTE_ERROR");
        expect((err as HostError).meta.remoteCode).toBe("BAD_REQUEST");
      }
    }
    expect(holder.service.stats.badRequests).toBe(6);
    const data = randomBytes(100);
    const { hash } = await holder.blobs.put(data, { maxBytes: 1000 });
    const client = new BlobClient(other, { chainId: CHAIN });
    expect(await client.fetchBlob(hash, 100, [holder.host.peerId])).toEqual(new Uint8Array(data));
  });

  it("a holder at its limit answers busy; the requester retries, then reports BUSY", async () => {
    const holder = await node("holder", { maxConcurrent: 0 });
    const client = new BlobClient(await host(), { chainId: CHAIN });
    await connect(client.host, holder.host);
    const { hash } = await holder.blobs.put(randomBytes(10), { maxBytes: 10 });
    const err = await rejection(client.fetchBlob(hash, 10, [holder.host.peerId]));
    expect((err as BlobError).code).toBe("BUSY");
    // The first try and three retries.
    expect(holder.service.stats.refusedBusy).toBe(4);
  });
});

describe("weights", () => {
  let modelDir: string;
  let weights: ChunkedWeights;
  let digest: string;

  beforeAll(async () => {
    await initBackend({ backend: "cpu" });
    modelDir = await mkdtemp(join(tmpdir(), "ds-blobs-model-"));
    const config = gpt2ConfigJson({ vocabSize: 96, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2 });
    const model = createModel(config, { seed: 7 });
    digest = weightsDigest(model);
    await saveModel(model, modelDir);
    model.dispose();
    // config.json travels with the weights, so the fetched directory loads on its own.
    weights = await ChunkedWeights.open(modelDir, {
      files: ["config.json", "model.safetensors"],
      chunkSize: 8192,
    });
  });
  afterAll(async () => {
    await rm(modelDir, { recursive: true, force: true });
  });

  async function holders(n: number, replication: number, options: Partial<BlobServiceOptions> = {}) {
    const nodes: Node[] = [];
    for (let i = 0; i < n; i++) nodes.push(await node(`holder${i}`, options));
    const ids = nodes.map((x) => x.host.peerId.toString());
    const placement = placeChunks(weights.weightsId, weights.manifest.chunkCount, ids, replication);
    for (const x of nodes) {
      const mine = placement.flatMap((hs, i) => (hs.includes(x.host.peerId.toString()) ? [i] : []));
      await x.chunks.putFrom(weights, mine);
    }
    const map = new Map(placement.map((hs, i) => [i, hs.map((id) => nodes[ids.indexOf(id)]!.host.peerId)]));
    return { nodes, map };
  }

  it("fetches a real model from 3 holders in parallel, verified, reassembled and loadable, with progress", async () => {
    expect(weights.manifest.chunkCount).toBeGreaterThan(10);
    const { nodes, map } = await holders(3, 2);
    const buyer = await host();
    await connect(buyer, ...nodes.map((x) => x.host));
    const client = new BlobClient(buyer, { chainId: CHAIN, concurrency: 4 });
    const events: FetchProgress[] = [];
    const out = join(dir, "fetched");
    const result = await client.fetchWeights(weights.weightsId, map, {
      dir: out,
      onProgress: (p) => events.push(p),
    });
    expect(result.files).toEqual(["config.json", "model.safetensors"]);
    expect(result.manifest).toEqual(weights.manifest);
    const model = await loadModel(out);
    expect(weightsDigest(model)).toBe(digest);
    model.dispose();

    const total = weights.manifest.chunkCount;
    expect(events[0]).toMatchObject({ chunksDone: 0, chunksTotal: total, bytesDone: 0 });
    const last = events.at(-1)!;
    expect(last).toMatchObject({
      chunksDone: total,
      bytesDone: weights.manifest.totalSize,
      bytesTotal: weights.manifest.totalSize,
    });
    expect(events.map((e) => e.chunksDone)).toEqual([...Array(total + 1).keys()]);
    const perPeer = Object.values(last.peers);
    expect(perPeer.reduce((n, s) => n + s.chunks, 0)).toBe(total);
    // The load is spread: every holder served some chunks.
    expect(perPeer.filter((s) => s.chunks > 0).length).toBe(3);
    const served = nodes.reduce((n, x) => n + x.service.stats.chunkRequests, 0);
    expect(served).toBe(total);
  });

  it("rejects a chunk that fails its proof, naming it, and fails over to an honest holder", async () => {
    const { nodes } = await holders(1, 1);
    const honest = nodes[0]!;
    // A real holder whose handler serves the true chunk with one bit flipped.
    const liar = await host();
    const liarChunks = await ChunkStore.open(join(dir, "liar"));
    await liarChunks.putFrom(weights);
    await liar.handle(weightsProtocol(CHAIN), async (raw) => {
      const req = weightsRequestCodec.decode(raw);
      if (req.type !== "weights.chunk.request") throw new Error("unexpected");
      const chunk = await liarChunks.get(weights.weightsId, req.index);
      const data = Uint8Array.from(chunk.bytes);
      data[data.length >> 1]! ^= 0x10;
      return weightsResponseCodec.encode({ ...req, type: "weights.chunk", data, proof: chunk.proof });
    });
    const buyer = await host();
    await connect(buyer, liar, honest.host);
    const map = new Map(
      Array.from({ length: weights.manifest.chunkCount }, (_, i) => [i, [liar.peerId, honest.host.peerId]]),
    );
    const client = new BlobClient(buyer, { chainId: CHAIN, concurrency: 2 });
    const failures: ChunkFailure[] = [];
    const out = join(dir, "fetched");
    await client.fetchWeights(weights.manifest, map, { dir: out, onFailure: (f) => failures.push(f) });

    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) {
      expect(f.peer).toBe(liar.peerId.toString());
      expect(f.error.code).toBe("INVALID_CHUNK");
      expect(f.error.message).toContain(`chunk ${f.index} `);
      expect(f.error.message).toContain("failed its proof");
    }
    // Remembered: after its first bad chunks the liar is not asked again, in this fetch or the next.
    expect(failures.length).toBeLessThanOrEqual(2);
    expect(client.badPeers.has(liar.peerId.toString())).toBe(true);
    const fetched = await readFile(join(out, "model.safetensors"));
    expect(fetched.equals(await readFile(join(modelDir, "model.safetensors")))).toBe(true);
    const again: ChunkFailure[] = [];
    await client.fetchWeights(weights.manifest, map, {
      dir: join(dir, "again"),
      onFailure: (f) => again.push(f),
    });
    expect(again).toEqual([]);
  });

  it("a buyer without a license gets a clear NO_LICENSE error and nothing is written", async () => {
    const buyer = await host();
    const licensed = new Set<string>();
    const asked: { account: string; weightsId: string }[] = [];
    const { nodes, map } = await holders(2, 2, {
      canServe: async (account, weightsId) => {
        asked.push({ account: Buffer.from(account).toString("hex"), weightsId });
        return licensed.has(Buffer.from(account).toString("hex"));
      },
    });
    await connect(buyer, ...nodes.map((x) => x.host));
    const client = new BlobClient(buyer, { chainId: CHAIN });
    const out = join(dir, "fetched");
    const err = await rejection(client.fetchWeights(weights.manifest, map, { dir: out }));
    expect(err).toBeInstanceOf(BlobError);
    expect((err as BlobError).code).toBe("NO_LICENSE");
    expect((err as BlobError).shortMessage).toMatch(/refused chunk \d+ of weights [0-9a-f]{64}: no license/);
    expect((err as BlobError).details).toContain("no license");
    const account = Buffer.from(publicKeyFromPeerId(buyer.peerId)).toString("hex");
    expect(asked[0]).toEqual({ account, weightsId: weights.weightsId });
    expect(await readdir(dir)).not.toContain("fetched");
    expect(client.badPeers.size).toBe(0);

    // A license check that fails (the ledger is unreachable, say) is a busy reply, not a refusal.
    const broken = await node("broken", {
      canServe: () => {
        throw new Error("ledger unreachable");
      },
    });
    await broken.chunks.putFrom(weights);
    await connect(buyer, broken.host);
    const all = new Map([...map.keys()].map((i) => [i, [broken.host.peerId]]));
    const busy = await rejection(client.fetchWeights(weights.manifest, all, { dir: out, concurrency: 1 }));
    expect((busy as BlobError).code).toBe("BUSY");
    expect(broken.service.stats.refusedBusy).toBe(4);

    // Once the ledger says the buyer holds a license, the same holders serve it.
    licensed.add(account);
    await client.fetchWeights(weights.manifest, map, { dir: out });
    const model = await loadModel(out);
    expect(weightsDigest(model)).toBe(digest);
    model.dispose();
  });

  it("fails over when a holder is killed mid-fetch and when one never answers", async () => {
    let calls = 0;
    let doomed: Host | undefined;
    const { nodes } = await holders(1, 1, {
      // The holder dies while serving its third chunk.
      canServe: async () => {
        if (++calls === 3) {
          await doomed!.stop();
          return false;
        }
        return true;
      },
    });
    doomed = nodes[0]!.host;
    const survivor = await node("survivor");
    await survivor.chunks.putFrom(weights);
    // A holder that accepts requests and never answers them.
    const silent = await host();
    await silent.handle(weightsProtocol(CHAIN), (_raw, ctx) => {
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
      );
    });
    const buyer = await host();
    await connect(buyer, doomed, survivor.host, silent);
    const map = new Map(
      Array.from({ length: weights.manifest.chunkCount }, (_, i) => [
        i,
        [doomed!.peerId, silent.peerId, survivor.host.peerId],
      ]),
    );
    const client = new BlobClient(buyer, { chainId: CHAIN, concurrency: 3, timeoutMs: 1000 });
    const failures: ChunkFailure[] = [];
    let progress: FetchProgress | undefined;
    const out = join(dir, "fetched");
    await client.fetchWeights(weights.manifest, map, {
      dir: out,
      onFailure: (f) => failures.push(f),
      onProgress: (p) => {
        progress = p;
      },
    });
    const model = await loadModel(out);
    expect(weightsDigest(model)).toBe(digest);
    model.dispose();
    const byPeer = (p: Host) => failures.filter((f) => f.peer === p.peerId.toString());
    expect(byPeer(doomed).length).toBeGreaterThan(0);
    expect(byPeer(silent).map((f) => f.error.code)).toContain("TIMEOUT");
    // A dead or silent holder is dropped after two failures in a row, not retried for every chunk.
    expect(byPeer(silent).length).toBeLessThanOrEqual(3 + 2);
    expect(progress!.peers[survivor.host.peerId.toString()]!.chunks).toBeGreaterThan(0);
    expect(client.badPeers.size).toBe(0);
  });
});
