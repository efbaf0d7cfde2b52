/**
 * Bad input and faults (issue #6 §5) against the node processes of one devnet: malformed and
 * forged transactions over the API and gossiped raw by a rogue host (refused before the
 * application, the rogue penalised), a rogue holder whose chunks fail their proof, a rogue informant
 * whose blob is larger than announced, a chunk request without a license, and a trainer+validator
 * killed with SIGKILL after its commit that restarts from its data directory, catches up and
 * reveals, so the round completes. Each bad input gets a typed error, the node keeps committing
 * blocks, and nothing is written for it.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ParamsOverrides, txBatchCodec } from "@deepshard/ledger";
import {
  encodeAddress,
  encodeTx,
  generateKeyPair,
  readKeystore,
  type SignedTx,
  txHash,
  weightsProtocol,
  weightsRequestCodec,
  weightsResponseCodec,
} from "@deepshard/protocol";
import { gossipTopic, type Host } from "@deepshard/protocol/host";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlobClient, BlobError, BlobService, BlobStore, ChunkStore } from "../src/node/blobs/index.ts";
import { DeepshardClient } from "../src/node/client.ts";
import { networkPaths } from "../src/node/datadir.ts";
import {
  DEVNET_PASSPHRASE,
  Devnet,
  type DevnetEvent,
  type DevnetManifest,
  type DevnetNode,
  genesisModel,
  prepareDevnet,
} from "../src/node/devnet.ts";
import { InformantClient } from "../src/node/roles/informant/client.ts";
import { WeightsClient } from "../src/node/roles/storage/client.ts";
import { importModel } from "../src/node/roles/storage/models.ts";
import { signTx } from "../src/node/tx.ts";
import { alive, type Restarted, restartNode, rogueHost, stopRestarted, until } from "./faults-fixture.ts";

const RECIPE = { steps: 20, batchSize: 8, context: 64, nEmbd: 16, nLayer: 1, nHead: 2 };
const CHUNK_SIZE = 4096;
const PARAMS: ParamsOverrides = {
  downtime: { window: 10_000, minSignedBps: 1_000 },
  data: { votingWindow: 12, minStake: 10n },
  training: {
    batchSize: 1,
    commitWindow: 80,
    revealWindow: 40,
    verdictWindow: 60,
    hyperParameters: { learningRateMicro: 5000, epochs: 2, microBatch: 4 },
  },
};
const NODE_ENV = { DEEPSHARD_BLOCK_INTERVAL_MS: "300" };
const GOOD_TEXT = [
  "Seven plus five is twelve. Twelve minus five is seven.",
  "A week has seven days, and the day after Friday is Saturday.",
  "A square has four sides and a triangle has three sides.",
].join("\n\n");

let dir: string;
let manifest: DevnetManifest;
let devnet: Devnet | undefined;
let restarted: Restarted | undefined;
const events: DevnetEvent[] = [];
const hosts: Host[] = [];
const clients: { close(): Promise<void> }[] = [];
/** A funded account outside the devnet: the rogue informant and the signer of the bad transactions. */
const rogue = generateKeyPair();
const rogueAddress = encodeAddress(rogue.publicKey);
let api: DeepshardClient;
/** The SIGKILL scenario runs alongside the other cases: it must catch the trainer between commit and reveal. */
let killed: Promise<{ round: number; height: number }> | undefined;

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const node = (i: number): DevnetNode => devnet!.node(`node-${i}`);
const client = (url: string) => {
  const c = new DeepshardClient(url);
  clients.push(c);
  return c;
};
const nodeKey = async (i: number) =>
  (await readKeystore(networkPaths(node(i).dataDir, manifest.chainId).nodeKey, DEVNET_PASSPHRASE)).secretKey;
const blobPath = (n: DevnetNode, hash: string) => join(networkPaths(n.dataDir, manifest.chainId).blobs, hash);
const exists = (path: string) =>
  readFile(path).then(
    () => true,
    () => false,
  );

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-faults-"));
  manifest = await prepareDevnet({
    dir,
    roles: [
      ["validator", "informant", "storage"],
      ["validator", "trainer", "storage"],
      ["validator", "trainer", "storage"],
      // Holds nothing and caches nothing: its fetch goes to the holders.
      ["inference"],
    ],
    recipe: RECIPE,
    params: PARAMS,
    chunkSize: CHUNK_SIZE,
  });
  devnet = await Devnet.start(manifest, { logLevel: "warn", env: NODE_ENV });
  devnet.subscribe((e) => events.push(e));
  api = client(node(2).api);
  // Good data opens a training round while the other cases run.
  const informant = new InformantClient(node(0).api);
  clients.push(informant);
  await informant.submit(new TextEncoder().encode(GOOD_TEXT), { stake: 100n });
  killed = killTrainerAfterCommit();
  killed.catch(() => {});
  const funded = await client(node(0).api).transfer(await nodeKey(0), rogueAddress, 10_000n, {
    wait: true,
    timeoutMs: 30_000,
  });
  expect(funded.code).toBe(0);
}, 180_000);

afterAll(async () => {
  for (const h of hosts.splice(0)) await h.stop();
  for (const c of clients.splice(0)) await c.close();
  if (restarted) await stopRestarted(restarted);
  await devnet?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function rogueOn(nodes: DevnetNode[], secretKey?: Uint8Array): Promise<Host> {
  const h = await rogueHost(nodes, secretKey);
  hosts.push(h);
  return h;
}

/** The height of node-2 grows past its current value: the node keeps running. */
async function keepsCommitting(c: DeepshardClient = api, blocks = 2): Promise<void> {
  const start = (await c.status()).height;
  await until("height advancing", async () => (await c.status()).height >= start + blocks, 60_000);
}

function transfer(nonce: bigint, amount = 1n): SignedTx {
  return signTx(
    rogue.secretKey,
    { type: "transfer", to: generateKeyPair().publicKey, amount },
    { chainId: manifest.chainId, nonce, fee: 1n },
  );
}

/** The same transaction with its nonce in a wider CBOR form than necessary (valid CBOR, not canonical). */
function nonCanonical(tx: SignedTx): Uint8Array {
  const bytes = Buffer.from(encodeTx(tx));
  const key = Buffer.from([0x65, ...Buffer.from("nonce")]);
  const at = bytes.indexOf(key) + key.length;
  const value = bytes[at]!;
  expect(value).toBeLessThan(24);
  return Buffer.concat([bytes.subarray(0, at), Buffer.from([0x18, value]), bytes.subarray(at + 1)]);
}

function forged(tx: SignedTx): SignedTx {
  return { ...tx, signature: Uint8Array.from(tx.signature, (b, i) => (i === 0 ? b ^ 1 : b)) };
}

async function postTx(bytes: Uint8Array) {
  const res = await request(`${node(2).api}/tx`, {
    method: "POST",
    body: Buffer.from(bytes),
    headers: { "content-type": "application/octet-stream" },
  });
  return {
    status: res.statusCode,
    json: (await res.body.json()) as { error?: { code: string; message: string } },
  };
}

async function rogueState() {
  const a = await api.account(rogueAddress);
  return { balance: a.balance, nonce: a.nonce, nextNonce: a.nextNonce };
}

/** Waits for node-1's commit to land, kills it, restarts it; resolves with the round. */
async function killTrainerAfterCommit(): Promise<{ round: number; height: number }> {
  const commit = await until(
    "node-1 commits its trained weights",
    () =>
      events.find((e) => e.node === "node-1" && e.event.type === "trainer.commit")?.event as
        | { round: number; tx: string }
        | undefined,
    150_000,
  );
  const c0 = client(node(0).api);
  await c0.waitForTx(commit.tx, 30_000);
  const victim = node(1);
  process.kill(victim.pid, "SIGKILL");
  await until("node-1 gone", () => !alive(victim.pid), 10_000);
  const height = (await c0.status()).height;
  restarted = await restartNode(victim, [node(0), node(2)], NODE_ENV);
  return { round: commit.round, height };
}

describe("bad input and faults on a devnet of node processes", () => {
  it("refuses malformed and forged transactions posted to the API, writing nothing", async () => {
    const before = await rogueState();
    const good = transfer(before.nextNonce);
    const canonical = encodeTx(good);
    const cases: [Uint8Array, string, RegExp][] = [
      [randomBytes(97), "TX_MALFORMED", /malformed transaction/],
      [canonical.subarray(0, canonical.length - 5), "TX_MALFORMED", /malformed transaction/],
      [nonCanonical(good), "TX_MALFORMED", /canonical/],
      [encodeTx(forged(good)), "TX_BAD_SIGNATURE", /signature does not verify/],
    ];
    for (const [bytes, code, message] of cases) {
      const res = await postTx(bytes);
      expect([res.status, res.json.error?.code], code).toEqual([400, code]);
      expect(res.json.error!.message).toMatch(message);
    }
    await keepsCommitting();
    expect(await rogueState()).toEqual(before);
    await expect(api.tx(hex(txHash(good)))).rejects.toMatchObject({
      code: "TX_NOT_FOUND",
    });
  }, 90_000);

  it("rejects malformed and forged gossip before the application and stops listening to its sender", async () => {
    const topic = gossipTopic(manifest.chainId, "txs");
    const liar = await rogueOn([node(2)]);
    await until("node-2 subscribed, seen by the rogue", () => liar.topicPeers(topic).length > 0);
    const batch = (...txs: Uint8Array[]) => txBatchCodec.encode({ v: 1, type: "txs", txs });

    // First an honest batch from this host: it reaches the chain.
    const start = await rogueState();
    const first = transfer(start.nextNonce);
    expect(await liar.publish(topic, batch(encodeTx(first)))).toBeGreaterThan(0);
    await until(
      "the gossiped transfer committed",
      async () => (await rogueState()).nonce === start.nextNonce,
    );

    // Then garbage, a truncated transaction, a non-canonical one and a forged one.
    const before = await rogueState();
    const next = transfer(before.nextNonce);
    const bytes = encodeTx(next);
    const bad = [
      randomBytes(80),
      batch(bytes.subarray(0, bytes.length - 4)),
      batch(nonCanonical(next)),
      batch(encodeTx(forged(next))),
    ];
    for (const data of bad) await liar.publish(topic, data);
    await keepsCommitting(api, 6);
    expect(await rogueState()).toEqual(before);

    // Penalised: a valid transaction from the same host is no longer taken from it…
    expect(await liar.publish(topic, batch(bytes))).toBeGreaterThan(0);
    await keepsCommitting(api, 6);
    expect(await rogueState()).toEqual(before);
    // …though the transaction itself is fine: posted to the API it commits.
    const sent = await api.submit(next);
    const done = await api.waitForTx(sent.hash, 30_000);
    expect(done.ok).toBe(true);
    expect((await rogueState()).nonce).toBe(before.nextNonce);
  }, 120_000);

  it("rejects a chunk that fails its proof, names it, fails over to honest holders and stores nothing bad", async () => {
    const weightsId = manifest.weightsId;
    const modelDir = await genesisModel(dir, RECIPE);
    const liarChunks = await ChunkStore.open(join(dir, "liar"));
    const shards = await importModel(liarChunks, modelDir, { chunkSize: CHUNK_SIZE });
    expect(shards.weightsId).toBe(weightsId);
    const n3 = node(3);
    const liar = await rogueOn([n3]);
    await liar.handle(weightsProtocol(manifest.chainId), async (raw) => {
      const req = weightsRequestCodec.decode(raw);
      if (req.type !== "weights.chunk.request") throw new Error("this rogue serves chunks only");
      const chunk = await liarChunks.get(weightsId, req.index);
      const data = Uint8Array.from(chunk.bytes);
      data[data.length >> 1]! ^= 0x10;
      return weightsResponseCodec.encode({ ...req, type: "weights.chunk", data, proof: chunk.proof });
    });
    // It claims every chunk, again and again (holders that stop announcing are forgotten).
    const announce = new TextEncoder().encode(
      JSON.stringify({
        v: 1,
        roles: [],
        addrs: liar.addresses().map(String),
        holdings: [{ weightsId, chunkCount: shards.chunkCount, ranges: [[0, shards.chunkCount]] }],
      }),
    );
    const topic = gossipTopic(manifest.chainId, "weights-holders");
    await until("node-3 seen on the holders topic", () => liar.topicPeers(topic).length > 0);
    const timer = setInterval(() => void liar.publish(topic, announce).catch(() => {}), 500);
    try {
      await liar.publish(topic, announce);
      const n3api = client(n3.api);
      const status = await n3api.status();
      const bought = await n3api.send(
        await nodeKey(3),
        { type: "weights.buy", weightsId: Buffer.from(weightsId, "hex"), maxPrice: status.price },
        { wait: true, timeoutMs: 30_000 },
      );
      expect(bought.code).toBe(0);
      const weights = new WeightsClient(n3.api);
      clients.push(weights);
      await new Promise((r) => setTimeout(r, 1500));
      await weights.fetch({ weightsId });
      const job = await weights.waitForFetch(weightsId, undefined, { timeoutMs: 60_000 });
      expect(job.state).toBe("done");
      expect(job.source).toBe("peers");
      const byLiar = job.peers[liar.peerId.toString()];
      expect(byLiar?.failures).toBeGreaterThan(0);
      expect(byLiar?.chunks).toBe(0);
      // The fetched model is the genesis model, byte for byte.
      for (const file of ["config.json", "model.safetensors"]) {
        const got = await readFile(join(job.dir!, file));
        expect(got.equals(await readFile(join(modelDir, file))), file).toBe(true);
      }
      const log = await readFile(join(n3.dataDir, "node.log"), "utf8");
      expect(log).toMatch(new RegExp(`chunk \\d+ from peer ${liar.peerId} failed its proof`));
    } finally {
      clearInterval(timer);
    }
    await keepsCommitting(client(n3.api));
  }, 120_000);

  it("a rogue informant's blob larger than announced gets zero votes and is stored nowhere", async () => {
    const host = await rogueOn(
      [node(0), node(1), node(2)].filter((n) => alive(n.pid)),
      rogue.secretKey,
    );
    const blobs = await BlobStore.open(join(dir, "rogue"));
    await BlobService.start(host, {
      chainId: manifest.chainId,
      blobs,
      chunks: await ChunkStore.open(join(dir, "rogue")),
      canServe: () => true,
    });
    const text = new TextEncoder().encode("A text whose size the informant understates in its submission.");
    const held = await blobs.put(text, { maxBytes: 1_000 });
    const before = await rogueState();
    const sent = await api.send(
      rogue.secretKey,
      { type: "data.submit", contentHash: Buffer.from(held.hash, "hex"), size: text.length - 10, stake: 30n },
      { wait: true, timeoutMs: 30_000 },
    );
    expect(sent.code).toBe(0);
    const voteOf = (name: string) =>
      events.find(
        (e) =>
          e.node === name &&
          e.event.type === "validator.vote" &&
          (e.event as { submission?: string }).submission === sent.hash,
      )?.event as { verdict: string; combined: number } | undefined;
    await until("votes of node-0 and node-2", () => voteOf("node-0") && voteOf("node-2"), 60_000);
    for (const name of ["node-0", "node-2"]) {
      expect(voteOf(name)).toMatchObject({ verdict: "invalid", combined: 0 });
    }
    // Rejected: the stake burned, and the blob is on no node.
    await until(
      "the rogue's stake burned",
      async () => (await rogueState()).balance === before.balance - 1n - 30n,
      60_000,
    );
    for (const n of devnet!.nodes) expect(await exists(blobPath(n, held.hash)), n.name).toBe(false);
    await keepsCommitting();
  }, 120_000);

  it("answers a chunk request without a license with NO_LICENSE and serves nothing", async () => {
    const n2 = node(2);
    const stranger = await rogueOn([n2]);
    const metric = async () => {
      const text = await api.metrics();
      return Number(/^deepshard_serve_refusals_total\{reason="no_license"[^}]*\} (\d+)$/m.exec(text)?.[1]);
    };
    const refusedBefore = await metric();
    const local = await ChunkStore.open(join(dir, "stranger-manifest"));
    const shards = await importModel(local, await genesisModel(dir, RECIPE), { chunkSize: CHUNK_SIZE });
    const blobClient = new BlobClient(stranger, { chainId: manifest.chainId });
    const holders = new Map(Array.from({ length: shards.chunkCount }, (_, i) => [i, [n2.peerId]]));
    const out = join(dir, "stranger");
    const err = await blobClient.fetchWeights(shards, holders, { dir: out }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BlobError);
    expect((err as BlobError).code).toBe("NO_LICENSE");
    expect((err as BlobError).shortMessage).toMatch(/refused chunk \d+ of weights [0-9a-f]{64}: no license/);
    expect(await readdir(dir)).not.toContain("stranger");
    expect(await metric()).toBeGreaterThan(refusedBefore);
    await keepsCommitting();
  }, 60_000);

  it("a trainer+validator killed with SIGKILL after its commit restarts, catches up, reveals, and the round completes", async () => {
    const { round, height } = await killed!;
    const r = restarted!;
    const c1 = client(r.api);
    const c0 = client(node(0).api);
    // It catches up to where the others are.
    await until("node-1 caught up", async () => (await c1.status()).height >= height, 60_000);
    // It reveals (its journal survived the kill) and the round settles with it rewarded.
    const w1 = new WeightsClient(r.api);
    clients.push(w1);
    const mine = await until(
      `node-1's outcome in round ${round}`,
      async () =>
        ((await w1.trainerStatus()).rounds as { round: number; outcome?: string; weightsId?: string }[]).find(
          (x) => x.round === round && x.outcome,
        ),
      180_000,
    );
    expect(mine.outcome).toBe("rewarded");
    // The reveal came from its second life: the devnet followed only the first, which did not reveal.
    const firstLife = events.filter((e) => e.node === "node-1" && e.event.type === "trainer.reveal");
    expect(firstLife).toEqual([]);
    expect(events.some((e) => e.node === "node-1" && e.event.type === "devnet.node_exited")).toBe(true);
    expect((await c0.status()).canonicalWeightsId).not.toBe(manifest.weightsId);
    // Every node: the same app hash at a common height, and the supply adds up.
    const all = [c0, c1, api, client(node(3).api)];
    const heights = await Promise.all(all.map(async (c) => (await c.status()).height));
    const common = Math.min(...heights);
    const hashes = await Promise.all(all.map(async (c) => (await c.block(common)).appHash));
    expect(new Set(hashes).size).toBe(1);
    for (const c of all) expect((await c.supply()).holds).toBe(true);
  }, 300_000);
});
