/**
 * Transactions that reached nobody when first gossiped (submitted before the node had peers on the
 * tx topic) are gossiped again: a non-validator submits before connecting and its transfer is
 * still committed; the re-sends are bounded per interval, back off per transaction, and wait for
 * peers. Real libp2p over TCP on 127.0.0.1.
 */
import { createHost, gossipTopic, type Host } from "@deepshard/protocol/host";
import { afterEach, describe, expect, it } from "vitest";
import { genesisState } from "../src/genesis/index.ts";
import {
  type LedgerNode,
  ledgerMempoolApp,
  Mempool,
  SignatureCache,
  startNode,
  TxGossip,
} from "../src/index.ts";
import { toHex } from "../src/state/hashing.ts";
import {
  accountKey,
  DEVNET_CHAIN,
  devnetGenesis,
  LOOPBACK_TIMEOUTS,
  transfer,
  validatorKey,
} from "./fixtures/devnet.ts";

const nodes: LedgerNode[] = [];
const hosts: Host[] = [];
const gossips: TxGossip[] = [];
afterEach(async () => {
  for (const g of gossips.splice(0)) g.stop();
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
});

const balanceOf = (node: LedgerNode, key: Uint8Array): bigint =>
  node.state.tables.accounts.get(toHex(key))?.balance ?? 0n;

async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

describe("tx re-gossip", () => {
  it("a transfer submitted to a non-validator before it connects is committed", async () => {
    const genesis = devnetGenesis(3, 8);
    const common = {
      genesis,
      blockIntervalMs: 100,
      timeouts: LOOPBACK_TIMEOUTS,
      gossipIntervalMs: 300,
      heartbeatIntervalMs: 100,
    };
    for (let i = 0; i < 3; i++)
      nodes.push(await startNode({ ...common, secretKey: validatorKey(i).secretKey }));
    const [a, b, c] = nodes as [LedgerNode, LedgerNode, LedgerNode];
    await a.dial(b.addresses()[0]!);
    await a.dial(c.addresses()[0]!);
    await b.dial(c.addresses()[0]!);
    const client = await startNode({ ...common, secretKey: accountKey(6).secretKey });
    nodes.push(client);
    const bob = accountKey(7).publicKey;
    const before = balanceOf(a, bob);
    expect(client.submit(transfer(accountKey(0), bob, 1n, 5n))).toBe("added");
    // Its first batch leaves with nobody on the topic.
    await new Promise((r) => setTimeout(r, 200));
    await client.dial(a.addresses()[0]!);
    await until(() => nodes.every((n) => balanceOf(n, bob) === before + 5n), 15_000);
    for (const n of nodes) expect(balanceOf(n, bob)).toBe(before + 5n);
    expect(client.mempool.size).toBe(0);
  });

  it("re-sends wait for peers and the delay, are bounded per pass, and back off", async () => {
    const genesis = devnetGenesis(1, 4);
    let clock = 0;
    const now = () => clock;
    const mempool = new Mempool({ app: ledgerMempoolApp(() => genesisState(genesis)), now });
    for (let n = 1n; n <= 50n; n++) mempool.add(transfer(accountKey(0), accountKey(1).publicKey, n));
    const topic = gossipTopic(DEVNET_CHAIN, "txs");
    const sender = await createHost({ gossip: { heartbeatIntervalMs: 100 } });
    const receiver = await createHost({ gossip: { heartbeatIntervalMs: 100 } });
    hosts.push(sender, receiver);
    const resending = new TxGossip({
      host: sender,
      topic,
      signatures: mempool.signatures,
      pooled: () => mempool.pooled(),
      now,
      // Passes are run by hand below.
      resend: { afterMs: 2000, intervalMs: 3_600_000, maxTxs: 20, maxBackoffMs: 10_000 },
    });
    const listening = new TxGossip({ host: receiver, topic, signatures: new SignatureCache() });
    gossips.push(resending, listening);
    const received = new Map<string, number>();
    resending.start(() => {});
    listening.start((txs) => {
      for (const tx of txs) {
        const id = toHex(tx.signature);
        received.set(id, (received.get(id) ?? 0) + 1);
      }
    });

    clock = 5000;
    resending.resendWaiting();
    expect(resending.stats.resent).toBe(0); // nobody on the topic yet: no back-off spent
    await sender.dial(receiver.addresses()[0]!);
    await until(() => sender.topicPeers(topic).length > 0 && receiver.topicPeers(topic).length > 0, 5000);

    const pass = () => {
      const before = resending.stats.resent;
      resending.resendWaiting();
      return resending.stats.resent - before;
    };
    expect([pass(), pass(), pass(), pass()]).toEqual([20, 20, 10, 0]);
    await until(() => received.size === 50, 5000);
    expect(received.size).toBe(50);
    // Sent again once the doubled delay (4 s) is over, not before.
    clock = 8999;
    expect(pass()).toBe(0);
    clock = 9000;
    expect(pass()).toBe(20);
    // A transaction that left the pool is not sent again.
    mempool.update(
      1,
      [...mempool.pooled()].map((p) => p.tx),
    );
    clock = 60_000;
    expect(pass()).toBe(0);
  });
});
