/**
 * Consensus and transaction gossip over real libp2p hosts on 127.0.0.1: messages that decode and
 * carry valid signatures are delivered; forged ones never reach the handler and cost the relayer
 * gossip score; block sync returns what the peer serves.
 */
import { encodeConsensusMessage, headerHash, type SignedTx, sign, signingBytes } from "@deepshard/protocol";
import { createHost, gossipTopic, type Host } from "@deepshard/protocol/host";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Block,
  type ConsensusMessage,
  Libp2pTransport,
  SignatureCache,
  type SyncedBlock,
  TxGossip,
  txBatchCodec,
  txInfo,
  ZERO_HASH,
} from "../src/index.ts";
import { accountKey, DEVNET_CHAIN, transfer, validatorKey } from "./fixtures/devnet.ts";

const hosts: Host[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
});

async function pair(): Promise<[Host, Host]> {
  const a = await createHost({ gossip: { heartbeatIntervalMs: 100 } });
  const b = await createHost({ gossip: { heartbeatIntervalMs: 100 } });
  hosts.push(a, b);
  await a.dial(b.addresses()[0]!);
  return [a, b];
}

async function until(test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const signer = validatorKey(0);

function vote(height: number): ConsensusMessage<Block<SignedTx>> {
  const payload = {
    v: 1 as const,
    type: "prevote" as const,
    chainId: DEVNET_CHAIN,
    height,
    round: 0,
    blockHash: null,
  };
  return {
    v: 1,
    type: "vote",
    vote: { payload, signer: signer.publicKey, signature: sign(signer.secretKey, signingBytes(payload)) },
  };
}

function syncedBlock(height: number): SyncedBlock<SignedTx> {
  const block: Block<SignedTx> = {
    v: 1,
    header: {
      v: 1,
      chainId: DEVNET_CHAIN,
      height,
      time: 1000 + height,
      prevHash: ZERO_HASH,
      txRoot: ZERO_HASH,
      appHash: ZERO_HASH,
      proposer: signer.publicKey,
      lastCommitHash: ZERO_HASH,
    },
    txs: [transfer(accountKey(0), accountKey(1).publicKey, BigInt(height))],
    lastCommit: null,
  };
  const blockHash = headerHash(block.header);
  const payload = {
    v: 1 as const,
    type: "precommit" as const,
    chainId: DEVNET_CHAIN,
    height,
    round: 0,
    blockHash,
  };
  return {
    block,
    commit: {
      v: 1,
      height,
      round: 0,
      blockHash,
      signatures: [{ validator: signer.publicKey, signature: sign(signer.secretKey, signingBytes(payload)) }],
    },
  };
}

describe("libp2p consensus transport", () => {
  it("delivers authentic consensus messages and rejects forged ones, penalising the relayer", async () => {
    const [a, b] = await pair();
    const ta = await Libp2pTransport.create({ host: a, chainId: DEVNET_CHAIN, latestHeight: () => 0 });
    const tb = await Libp2pTransport.create({ host: b, chainId: DEVNET_CHAIN, latestHeight: () => 0 });
    cleanups.push(
      () => ta.close(),
      () => tb.close(),
    );
    const received: { height: number; from: string }[] = [];
    tb.onMessage((m, from) => {
      if (m.type === "vote") received.push({ height: m.vote.payload.height, from });
    });
    await until(() => a.meshPeers(ta.topic).length > 0 && b.meshPeers(tb.topic).length > 0);
    ta.broadcast(vote(7));
    await until(() => received.length === 1);
    expect(received[0]).toEqual({ height: 7, from: a.peerId.toString() });

    // A vote for height 8 carrying the signature of another vote.
    const forged = vote(8) as { vote: { signature: Uint8Array } };
    forged.vote.signature = (vote(9) as { vote: { signature: Uint8Array } }).vote.signature;
    await a.publish(ta.topic, encodeConsensusMessage(forged as never));
    await a.publish(ta.topic, new Uint8Array([1, 2, 3]));
    await until(() => b.gossipScore(a.peerId) < 0);
    ta.broadcast(vote(10));
    await until(() => received.length === 2);
    expect(received.map((r) => r.height)).toEqual([7, 10]);
  });

  it("serves block sync over request/response", async () => {
    const [a, b] = await pair();
    const ta = await Libp2pTransport.create({ host: a, chainId: DEVNET_CHAIN, latestHeight: () => 0 });
    const tb = await Libp2pTransport.create({ host: b, chainId: DEVNET_CHAIN, latestHeight: () => 5 });
    cleanups.push(
      () => ta.close(),
      () => tb.close(),
    );
    const stored = [1, 2, 3, 4, 5].map(syncedBlock);
    tb.onBlocksRequest(async (from, max) =>
      stored.filter((s) => s.block.header.height >= from).slice(0, max),
    );
    const got = await ta.requestBlocks(b.peerId.toString(), 2, 2);
    expect(got.map((s) => s.block.header.height)).toEqual([2, 3]);
    expect(headerHash(got[0]!.block.header)).toEqual(stored[1]!.commit.blockHash);
    expect(got[1]!.block.txs[0]!.payload).toEqual(stored[2]!.block.txs[0]!.payload);
  });
});

describe("transaction gossip", () => {
  it("batches transactions, verifies each signature once, rejects a batch with a forged one", async () => {
    const [a, b] = await pair();
    const topic = gossipTopic(DEVNET_CHAIN, "txs");
    const ga = new TxGossip({ host: a, topic, signatures: new SignatureCache(), flushIntervalMs: 20 });
    const cache = new SignatureCache();
    const gb = new TxGossip({ host: b, topic, signatures: cache });
    cleanups.push(
      () => ga.stop(),
      () => gb.stop(),
    );
    const received: SignedTx[] = [];
    ga.start(() => {});
    gb.start((txs) => received.push(...txs));
    await until(() => a.meshPeers(topic).length > 0 && b.meshPeers(topic).length > 0);
    const alice = accountKey(0);
    const bob = accountKey(1).publicKey;
    const txs = Array.from({ length: 100 }, (_, i) => transfer(alice, bob, BigInt(i + 1)));
    for (const tx of txs) ga.publish(tx);
    await until(() => received.length === 100);
    // 100 transactions in a few batches, not 100 messages.
    expect(ga.stats.published).toBeLessThanOrEqual(2);
    expect(cache.verified).toBe(100);
    expect(received.map((t) => t.payload.nonce)).toEqual(txs.map((t) => t.payload.nonce));

    const forged = { ...transfer(alice, bob, 500n), signature: txs[0]!.signature };
    await a.publish(
      topic,
      txBatchCodec.encode({
        v: 1,
        type: "txs",
        txs: [transfer(alice, bob, 501n), forged].map((t) => txInfo(t).bytes),
      }),
    );
    await until(() => b.gossipScore(a.peerId) < 0);
    expect(received).toHaveLength(100);
  });
});
