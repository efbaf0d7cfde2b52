/**
 * Ledger nodes end to end in one process: one validator alone (the embedded default), four
 * validators over real libp2p TCP on 127.0.0.1 committing transfers and agreeing on state roots,
 * and a validator restarted from its data directory that replays, resumes and catches up.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeConsensusMessage, sign, signingBytes } from "@deepshard/protocol";
import { createHost, gossipTopic, type Host } from "@deepshard/protocol/host";
import { afterEach, describe, expect, it } from "vitest";
import { type LedgerNode, MempoolError, type NodeOptions, startNode } from "../src/index.ts";
import { toHex } from "../src/state/hashing.ts";
import {
  accountKey,
  DEVNET_CHAIN,
  devnetGenesis,
  LOOPBACK_TIMEOUTS,
  transfer,
  validatorKey,
} from "./fixtures/devnet.ts";

const open: LedgerNode[] = [];
const hosts: Host[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.stop()));
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ds-node-"));
  dirs.push(dir);
  return dir;
}

async function start(options: NodeOptions): Promise<LedgerNode> {
  const node = await startNode(options);
  open.push(node);
  return node;
}

function rootAt(node: LedgerNode, height: number): Promise<string | undefined> {
  return node.chain.store.getBlock(height).then((b) => b && toHex(b.root));
}

function balanceOf(node: LedgerNode, key: Uint8Array): bigint {
  return node.state.tables.accounts.get(toHex(key))?.balance ?? 0n;
}

async function network(
  count: number,
  dataDirs: (string | undefined)[] = [],
  genesis = devnetGenesis(count, 8),
): Promise<LedgerNode[]> {
  const nodes: LedgerNode[] = [];
  for (let i = 0; i < count; i++) {
    nodes.push(
      await start({
        genesis,
        secretKey: validatorKey(i).secretKey,
        dataDir: dataDirs[i],
        blockIntervalMs: 100,
        timeouts: LOOPBACK_TIMEOUTS,
        gossipIntervalMs: 300,
        heartbeatIntervalMs: 100,
      }),
    );
  }
  // A full mesh, dialled explicitly.
  for (let i = 0; i < count; i++)
    for (let j = i + 1; j < count; j++) await nodes[i]!.dial(nodes[j]!.addresses()[0]!);
  return nodes;
}

describe("ledger node", () => {
  it("one validator alone commits blocks with transfers, without a network", async () => {
    const genesis = devnetGenesis(1, 2);
    const node = await start({
      genesis,
      secretKey: validatorKey(0).secretKey,
      network: false,
      blockIntervalMs: 50,
    });
    const alice = accountKey(0);
    const bob = accountKey(1).publicKey;
    const before = balanceOf(node, bob);
    for (let n = 1n; n <= 5n; n++) expect(node.submit(transfer(alice, bob, n, 10n))).toBe("added");
    const target = node.height + 3;
    await node.waitForHeight(target, 10_000);
    expect(balanceOf(node, bob)).toBe(before + 50n);
    expect(node.mempool.size).toBe(0);
    // Replays are refused once committed.
    expect(() => node.submit(transfer(alice, bob, 1n, 10n))).toThrow(MempoolError);
    expect(node.consensus.errors).toEqual([]);
  });

  it("four validators over libp2p commit transfers and agree on every state root", async () => {
    const nodes = await network(4);
    const bob = accountKey(7).publicKey;
    const before = balanceOf(nodes[0]!, bob);
    // Each of 4 senders submits to a different node; gossip carries the batches to the others.
    let sent = 0n;
    for (let s = 0; s < 4; s++) {
      for (let n = 1n; n <= 25n; n++) {
        nodes[s]!.submit(transfer(accountKey(s), bob, n, 2n));
        sent += 2n;
      }
    }
    const deadline = Date.now() + 30_000;
    while (nodes.some((n) => balanceOf(n, bob) !== before + sent) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const n of nodes) expect(balanceOf(n, bob)).toBe(before + sent);
    await Promise.all(nodes.map((n) => n.waitForHeight(3, 20_000)));
    const common = Math.min(...nodes.map((n) => n.height));
    for (let h = 1; h <= common; h++) {
      const roots = await Promise.all(nodes.map((n) => rootAt(n, h)));
      expect(new Set(roots).size).toBe(1);
    }
    for (const n of nodes) expect(n.consensus.errors).toEqual([]);
  });

  it("a peer it dialled is dialled again when the connection drops", async () => {
    const nodes = await network(4);
    const [a, b] = [nodes[0]!, nodes[1]!];
    const connected = () => b.host!.peers().some((p) => p.equals(a.host!.peerId));
    // Node 0 dialled node 1; node 1 cuts the connection (as libp2p's ping monitor does to a peer
    // that stalled), and node 0 reconnects.
    await b.host!.hangUp(a.host!.peerId);
    expect(connected()).toBe(false);
    const deadline = Date.now() + 10_000;
    while (!connected() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(connected()).toBe(true);
    const height = Math.max(...nodes.map((n) => n.height));
    await Promise.all(nodes.map((n) => n.waitForHeight(height + 2, 20_000)));
  });

  it("a validator restarted from its data directory replays, resumes and catches up", async () => {
    const dirs = [await tempDir(), await tempDir(), await tempDir(), await tempDir()];
    const nodes = await network(4, dirs);
    const bob = accountKey(6).publicKey;
    for (let n = 1n; n <= 10n; n++) nodes[0]!.submit(transfer(accountKey(0), bob, n));
    await Promise.all(nodes.map((n) => n.waitForHeight(3, 20_000)));
    // Stop one; the other three keep the 3/4 quorum and go on.
    const stoppedAt = nodes[3]!.height;
    await nodes[3]!.stop();
    await Promise.all(nodes.slice(0, 3).map((n) => n.waitForHeight(stoppedAt + 3, 20_000)));
    for (let n = 1n; n <= 10n; n++) nodes[1]!.submit(transfer(accountKey(1), bob, n));
    const genesis = nodes[0]!.chain.genesis;
    const again = await start({
      genesis,
      secretKey: validatorKey(3).secretKey,
      dataDir: dirs[3],
      blockIntervalMs: 100,
      timeouts: LOOPBACK_TIMEOUTS,
      gossipIntervalMs: 300,
      heartbeatIntervalMs: 100,
    });
    expect(again.height).toBe(stoppedAt);
    for (const n of nodes.slice(0, 3)) await again.dial(n.addresses()[0]!);
    const target = Math.max(...nodes.slice(0, 3).map((n) => n.height)) + 2;
    await again.waitForHeight(target, 30_000);
    await Promise.all(nodes.slice(0, 3).map((n) => n.waitForHeight(target, 20_000)));
    const roots = await Promise.all([...nodes.slice(0, 3), again].map((n) => rootAt(n, target)));
    expect(new Set(roots).size).toBe(1);
    expect(again.consensus.errors).toEqual([]);
  });

  it("a validator that double-signs is reported in an evidence transaction and tombstoned", async () => {
    const nodes = await network(3, [], devnetGenesis(4, 8));
    // Validator 3 is not running; its key signs two different prevotes for the height being decided.
    const culprit = validatorKey(3);
    const attacker = await createHost();
    hosts.push(attacker);
    for (const n of nodes) await attacker.dial(n.addresses()[0]!);
    const topic = gossipTopic(DEVNET_CHAIN, "consensus");
    attacker.subscribe(
      topic,
      () => "accept",
      () => {},
    );
    const address = toHex(culprit.publicKey);
    const tombstoned = (n: LedgerNode) => n.state.tables.validators.get(address)?.tombstoned === true;
    const deadline = Date.now() + 30_000;
    for (let k = 0; !nodes.every(tombstoned) && Date.now() < deadline; k++) {
      const height = nodes[0]!.consensus.height;
      for (const fill of [k * 2 + 1, k * 2 + 2]) {
        const payload = {
          v: 1 as const,
          type: "prevote" as const,
          chainId: DEVNET_CHAIN,
          height,
          round: 0,
          blockHash: new Uint8Array(32).fill(fill % 256),
        };
        const vote = {
          payload,
          signer: culprit.publicKey,
          signature: sign(culprit.secretKey, signingBytes(payload)),
        };
        await attacker.publish(topic, encodeConsensusMessage({ v: 1, type: "vote", vote }));
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const n of nodes) expect(tombstoned(n)).toBe(true);
    // Slashed: less than the genesis bond is left.
    expect(nodes[0]!.state.tables.validators.get(address)!.bonded).toBeLessThan(1_000_000n);
    const common = Math.min(...nodes.map((n) => n.height));
    const roots = await Promise.all(nodes.map((n) => rootAt(n, common)));
    expect(new Set(roots).size).toBe(1);
  });
});
