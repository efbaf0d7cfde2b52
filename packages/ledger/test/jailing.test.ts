/**
 * Downtime jailing on a real network: four validators over libp2p TCP on 127.0.0.1, one stopped.
 * Every block carries the previous height's commit; the state machine counts who is missing from
 * it, so after more misses than the genesis window allows, the stopped validator is slashed and
 * jailed on every running node (its consensus power 0), and the three others go on.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createGenesis } from "../src/genesis/genesis.ts";
import { type LedgerNode, startNode } from "../src/index.ts";
import { toHex } from "../src/state/hashing.ts";
import { accountKey, DEVNET_CHAIN, LOOPBACK_TIMEOUTS, transfer, validatorKey } from "./fixtures/devnet.ts";

const WINDOW = 6;
const JAIL_BLOCKS = 10_000;
const BONDED = 1_000_000n;
/** More misses than this in one window jail (window × (1 − minSigned share)). */
const MAX_MISSED = WINDOW / 2;

const genesis = createGenesis({
  chainId: DEVNET_CHAIN,
  genesisTime: 1_700_000_000_000,
  accounts: [0, 1].map((i) => ({ address: accountKey(i).publicKey, balance: 1_000_000n })),
  validators: [0, 1, 2, 3].map((i) => ({
    address: validatorKey(i).publicKey,
    bonded: BONDED,
    balance: 1_000n,
  })),
  params: { downtime: { window: WINDOW, minSignedBps: 5_000, jailBlocks: JAIL_BLOCKS } },
});

const open: LedgerNode[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.stop()));
});

async function network(): Promise<LedgerNode[]> {
  for (let i = 0; i < 4; i++) {
    open.push(
      await startNode({
        genesis,
        secretKey: validatorKey(i).secretKey,
        blockIntervalMs: 50,
        timeouts: LOOPBACK_TIMEOUTS,
        gossipIntervalMs: 300,
        heartbeatIntervalMs: 100,
      }),
    );
  }
  const nodes = [...open];
  for (let i = 0; i < 4; i++) for (let j = i + 1; j < 4; j++) await nodes[i]!.dial(nodes[j]!.addresses()[0]!);
  return nodes;
}

describe("downtime jailing", () => {
  it("a stopped validator is jailed on every other node after the missed-blocks window; the chain goes on", async () => {
    const nodes = await network();
    await Promise.all(nodes.map((n) => n.waitForHeight(2, 20_000)));
    const down = nodes[3]!;
    const live = nodes.slice(0, 3);
    const address = toHex(down.publicKey);
    const stoppedAt = down.height;
    await down.stop();

    const jailed = (n: LedgerNode) => (n.state.tables.validators.get(address)?.jailedUntil ?? 0) > n.height;
    const deadline = Date.now() + 40_000;
    while (!live.every(jailed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const n of live) {
      expect(jailed(n)).toBe(true);
      const record = n.state.tables.validators.get(address)!;
      // Jailed in the block that counted one miss too many, never before its window allowed it.
      expect(record.jailedUntil - JAIL_BLOCKS).toBeGreaterThan(stoppedAt + MAX_MISSED);
      expect(record.bonded).toBeLessThan(BONDED);
      expect(n.consensus.validators.powerOf(address)).toBe(0n);
      expect(n.state.tables.meta.get("meta")!.validators.map((v) => v.address)).not.toContain(address);
      // The three that kept signing are neither jailed nor slashed.
      for (const other of live) {
        const v = n.state.tables.validators.get(toHex(other.publicKey))!;
        expect([v.jailedUntil, v.bonded]).toEqual([0, BONDED]);
        expect(n.consensus.validators.powerOf(toHex(other.publicKey))).toBe(BONDED);
      }
    }

    // The chain goes on without it: a transfer commits and every node agrees on the state root.
    const bob = accountKey(1).publicKey;
    const before = live[0]!.state.tables.accounts.get(toHex(bob))!.balance;
    live[0]!.submit(transfer(accountKey(0), bob, 1n, 7n));
    const target = Math.max(...live.map((n) => n.height)) + 3;
    await Promise.all(live.map((n) => n.waitForHeight(target, 20_000)));
    for (const n of live) expect(n.state.tables.accounts.get(toHex(bob))!.balance).toBe(before + 7n);
    const roots = await Promise.all(
      live.map((n) => n.chain.store.getBlock(target).then((b) => b && toHex(b.root))),
    );
    expect(new Set(roots).size).toBe(1);
    for (const n of live) expect(n.consensus.errors).toEqual([]);
  });
});
