/**
 * Live validators are not counted as absent: four validators over libp2p TCP on 127.0.0.1, all
 * running. Each block's lastCommit carries the precommits its proposer collected after the
 * decision too, so a validator that is merely the slowest of a height still appears in it; with a
 * downtime window that jails after a handful of misses, nobody is jailed.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createGenesis } from "../src/genesis/genesis.ts";
import { type LedgerNode, startNode } from "../src/index.ts";
import { toHex } from "../src/state/hashing.ts";
import { accountKey, DEVNET_CHAIN, LOOPBACK_TIMEOUTS, validatorKey } from "./fixtures/devnet.ts";

const BLOCKS = 30;
/** One window over the whole run, jailing after more than 3 misses (0.3% of 1000). */
const WINDOW = 1_000;
const MAX_MISSED = 3;
const BONDED = 1_000_000n;

const genesis = createGenesis({
  chainId: DEVNET_CHAIN,
  genesisTime: 1_700_000_000_000,
  accounts: [{ address: accountKey(0).publicKey, balance: 1_000_000n }],
  validators: [0, 1, 2, 3].map((i) => ({
    address: validatorKey(i).publicKey,
    bonded: BONDED,
    balance: 1_000n,
  })),
  params: { downtime: { window: WINDOW, minSignedBps: 9_970, jailBlocks: 10_000 } },
});

const open: LedgerNode[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.stop()));
});

describe("the previous commit of live validators", () => {
  it(`4 live validators over ${BLOCKS} blocks: nearly every lastCommit is complete, nobody is jailed under a strict window`, async () => {
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
    for (let i = 0; i < 4; i++)
      for (let j = i + 1; j < 4; j++) await nodes[i]!.dial(nodes[j]!.addresses()[0]!);
    await Promise.all(nodes.map((n) => n.waitForHeight(BLOCKS, 60_000)));

    const addresses = nodes.map((n) => toHex(n.publicKey));
    // Misses as the blocks record them: every validator absent from a block's lastCommit.
    const missing = addresses.map(() => 0);
    for (let h = 2; h <= BLOCKS; h++) {
      const { block } = (await nodes[0]!.consensus.store.get(h))!;
      const signed = new Set(block.lastCommit!.signatures.map((s) => toHex(s.validator)));
      addresses.forEach((a, i) => {
        if (!signed.has(a)) missing[i]!++;
      });
    }
    // Before lastCommit collected late precommits, every one held exactly 3 of 4 signatures and
    // the slowest validator (26 misses of 29 in one run) was jailed.
    for (const m of missing) expect(m).toBeLessThanOrEqual(MAX_MISSED);
    for (const n of nodes) {
      for (const address of addresses) {
        const v = n.state.tables.validators.get(address)!;
        expect(v.missed).toBeLessThanOrEqual(MAX_MISSED);
        expect([v.jailedUntil, v.bonded]).toEqual([0, BONDED]);
        expect(n.consensus.validators.powerOf(address)).toBe(BONDED);
      }
      expect(n.consensus.errors).toEqual([]);
    }
  });
});
