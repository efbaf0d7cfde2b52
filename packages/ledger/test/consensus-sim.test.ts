import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { bytesBlockHashing, protocolCrypto, verifyCommit, verifyEvidence } from "../src/index.ts";
import { CHAIN_ID, Cluster, type ClusterOptions } from "./sim/cluster.ts";

let clusters: Cluster[] = [];
afterEach(() => {
  for (const c of clusters) c.stop();
  clusters = [];
});

async function cluster(options: ClusterOptions): Promise<Cluster> {
  const c = new Cluster(options);
  clusters.push(c);
  await c.start();
  return c;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("consensus in simulation", () => {
  it("4 equal validators without faults decide 50 identical, verifiable heights", async () => {
    const c = await cluster({ seed: 1, powers: [1n, 1n, 1n, 1n] });
    expect(await c.run(60_000, () => c.minHeight() >= 50)).toBe(true);
    expect(c.assertNoFork()).toBeGreaterThanOrEqual(50);
    for (let i = 0; i < 4; i++) expect(await c.verifyCommits(i)).toBeGreaterThanOrEqual(50);
    c.assertSameAppState();
    expect(c.errors()).toEqual([]);
  });

  it("4 live validators without loss: every block from the first few on carries all 4 precommits of the previous height", async () => {
    for (const seed of [1, 21, 22]) {
      const c = await cluster({ seed, powers: [1n, 1n, 1n, 1n] });
      expect(await c.run(60_000, () => c.minHeight() >= 40)).toBe(true);
      const full: number[] = [];
      for (const v of c.validators) {
        for (let h = 2; h <= 40; h++) {
          const { block } = (await v.node.store.get(h))!;
          const last = block.lastCommit!;
          // Canonical: sorted by validator key, and it verifies against the set that decided h − 1.
          const keys = last.signatures.map((s) => hex(s.validator));
          expect(keys).toEqual([...keys].sort());
          verifyCommit(last, {
            chainId: CHAIN_ID,
            validators: c.setAt.get(h - 1)!,
            crypto: protocolCrypto,
            blockHash: bytesBlockHashing.headerHash((await v.node.store.get(h - 1))!.block.header),
            height: h - 1,
          });
          if (v === c.validators[0] && h >= 4 && last.signatures.length === 4) full.push(h);
        }
      }
      // Heights 4..40 (the nodes store the same blocks): the commit timeout (50 ms) is about the
      // largest message delay, so a precommit may now and then still arrive after the next proposal.
      expect(full.length).toBeGreaterThanOrEqual(33);
      expect(c.errors()).toEqual([]);
      c.stop();
    }
  });

  it("a validator pausing long after each commit joins the next height when it hears from it", async () => {
    // Validator 3 would wait 3 s after each commit; the others go on after 50 ms. It starts each
    // height with the first message of it, so it decides every height itself, never by block sync.
    const c = await cluster({ seed: 5, powers: [1n, 1n, 1n, 1n], commitTimeouts: [50, 50, 50, 3000] });
    expect(await c.run(30_000, () => c.minHeight() >= 30)).toBe(true);
    const slow = c.validators[3]!;
    expect(slow.synced).toBe(0);
    expect(c.assertNoFork()).toBeGreaterThanOrEqual(30);
    expect(c.errors()).toEqual([]);
  });

  it("a one-validator network commits on its own", async () => {
    const c = await cluster({ seed: 2, powers: [10n] });
    expect(await c.run(10_000, () => c.minHeight() >= 20)).toBe(true);
    expect(await c.verifyCommits(0)).toBeGreaterThanOrEqual(20);
    const first = await c.validators[0]!.node.store.get(1);
    expect(first!.commit.signatures).toHaveLength(1);
    expect(c.errors()).toEqual([]);
  });

  it("keeps safety and liveness with 20% loss, random delays and reordering", async () => {
    const c = await cluster({ seed: 3, powers: [1n, 1n, 1n, 1n], loss: 0.2, minDelayMs: 1, maxDelayMs: 300 });
    expect(await c.run(300_000, () => c.minHeight() >= 30)).toBe(true);
    expect(c.assertNoFork()).toBeGreaterThanOrEqual(30);
    c.assertSameAppState();
    // Losses forced later rounds: timeouts, round changes and locks were exercised.
    expect(await c.maxDecisionRound(0)).toBeGreaterThan(0);
    for (let i = 0; i < 4; i++) expect(await c.verifyCommits(i)).toBeGreaterThanOrEqual(30);
    expect(c.net.stats.dropped).toBeGreaterThan(0);
    expect(c.errors()).toEqual([]);
  });

  it("the same seed gives the same chain", async () => {
    const run = async () => {
      const c = await cluster({ seed: 4, powers: [3n, 2n, 2n, 1n], loss: 0.1, maxDelayMs: 200 });
      await c.run(20_000);
      c.stop();
      return {
        time: c.net.scheduler.now(),
        chain: [...c.validators[0]!.committed],
        stats: { ...c.net.stats },
      };
    };
    const a = await run();
    const b = await run();
    expect(a.chain.length).toBeGreaterThan(5);
    expect(b).toEqual(a);
  });

  it("a 2–2 partition halts without forking, and continues once healed", async () => {
    const c = await cluster({ seed: 5, powers: [1n, 1n, 1n, 1n] });
    expect(await c.run(60_000, () => c.minHeight() >= 5)).toBe(true);
    c.net.partition([
      ["v0", "v1"],
      ["v2", "v3"],
    ]);
    const atSplit = c.maxHeight();
    await c.run(60_000);
    // In-flight messages may finish the height under way; nothing beyond it.
    expect(c.maxHeight()).toBeLessThanOrEqual(atSplit + 1);
    c.assertNoFork();
    c.net.heal();
    expect(await c.run(120_000, () => c.minHeight() >= atSplit + 10)).toBe(true);
    expect(c.assertNoFork()).toBeGreaterThanOrEqual(atSplit + 10);
    expect(await c.verifyCommits(3)).toBeGreaterThanOrEqual(atSplit + 10);
    expect(c.errors()).toEqual([]);
  });

  it("a 3–1 partition: the three keep going, the one catches up with identical blocks", async () => {
    const c = await cluster({ seed: 6, powers: [1n, 1n, 1n, 1n] });
    expect(await c.run(60_000, () => c.minHeight() >= 5)).toBe(true);
    c.net.partition([["v0", "v1", "v2"], ["v3"]]);
    const lone = c.validators[3]!;
    const loneAtSplit = lone.node.height - 1;
    expect(await c.run(120_000, () => c.minHeight([0, 1, 2]) >= loneAtSplit + 20)).toBe(true);
    expect(lone.node.height - 1).toBeLessThanOrEqual(loneAtSplit + 1);
    c.net.heal();
    const target = c.maxHeight([0, 1, 2]) + 3;
    expect(await c.run(120_000, () => c.minHeight() >= target)).toBe(true);
    expect(lone.synced).toBeGreaterThan(0);
    c.assertNoFork();
    expect(await c.verifyCommits(3)).toBeGreaterThanOrEqual(target);
    c.assertSameAppState();
    expect(c.errors()).toEqual([]);
  });

  it("weights quorums and proposer turns by power (40/30/20/10)", async () => {
    const c = await cluster({ seed: 7, powers: [40n, 30n, 20n, 10n] });
    expect(await c.run(120_000, () => c.minHeight() >= 100)).toBe(true);
    c.assertNoFork();
    const counts = new Map<string, number>();
    const node = c.validators[0]!.node;
    for (let h = 1; h <= 100; h++) {
      const { block, commit } = (await node.store.get(h))!;
      const key = hex(block.header.proposer);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      // Fault-free: every height decided in its first round, by its first proposer.
      expect(commit.round).toBe(0);
    }
    const proposed = c.validators.map((v) => counts.get(hex(v.signer.publicKey)) ?? 0);
    expect(proposed).toEqual([40, 30, 20, 10]);

    // 40 + 30 = 70% > 2/3: these two alone keep deciding.
    c.net.partition([
      ["v0", "v1"],
      ["v2", "v3"],
    ]);
    const before = c.minHeight([0, 1]);
    expect(await c.run(120_000, () => c.minHeight([0, 1]) >= before + 10)).toBe(true);
    // 30 + 20 + 10 = 60% ≤ 2/3: without the 40 nobody decides.
    c.net.heal();
    c.net.partition([["v0"], ["v1", "v2", "v3"]]);
    await c.run(2_000);
    const stalled = c.maxHeight([1, 2, 3]);
    await c.run(60_000);
    expect(c.maxHeight([1, 2, 3])).toBeLessThanOrEqual(stalled + 1);
    c.net.heal();
    expect(await c.run(120_000, () => c.minHeight() >= stalled + 5)).toBe(true);
    c.assertNoFork();
    expect(c.errors()).toEqual([]);
  });

  it("a validator that double-votes is caught by every honest node and removed, and safety holds", async () => {
    const c = await cluster({ seed: 8, powers: [1n, 1n, 1n, 1n], doubleSigners: [3] });
    const cheater = c.validators[3]!;
    const honest = [0, 1, 2];
    expect(await c.run(120_000, () => c.minHeight(honest) >= 20)).toBe(true);
    c.assertNoFork();
    for (const i of honest) {
      const v = c.validators[i]!;
      expect(v.evidence.length).toBeGreaterThan(0);
      for (const e of v.evidence) {
        const culprit = verifyEvidence(e, {
          chainId: CHAIN_ID,
          validators: c.setAt.get(e.voteA.payload.height)!,
          crypto: protocolCrypto,
        });
        expect(hex(culprit)).toBe(hex(cheater.signer.publicKey));
      }
      // The application punished it and it left the validator set.
      expect([...v.app.slashed]).toEqual([hex(cheater.signer.publicKey)]);
      expect(v.node.validators.powerOf(hex(cheater.signer.publicKey))).toBe(0n);
      expect(await c.verifyCommits(i)).toBeGreaterThanOrEqual(20);
    }
    expect(c.errors()).toEqual([]);
  });
  it("block sync refuses blocks whose commit does not verify, then accepts honest ones", async () => {
    const c = await cluster({ seed: 9, powers: [1n, 1n, 1n, 1n] });
    expect(await c.run(60_000, () => c.minHeight() >= 3)).toBe(true);
    c.net.partition([["v0", "v1", "v2"], ["v3"]]);
    expect(await c.run(120_000, () => c.minHeight([0, 1, 2]) >= 15)).toBe(true);
    const lone = c.validators[3]!;
    const stuckAt = lone.node.height;
    // The three now serve forgeries: commits cut below 2/3, or blocks whose txs were swapped.
    const honestGets = [0, 1, 2].map((i) => {
      const store = c.validators[i]!.node.store;
      const get = store.get.bind(store);
      store.get = async (h) => {
        const entry = await get(h);
        if (!entry) return entry;
        return h % 2
          ? { ...entry, commit: { ...entry.commit, signatures: entry.commit.signatures.slice(0, 2) } }
          : { ...entry, block: { ...entry.block, txs: [new TextEncoder().encode("forged")] } };
      };
      return { store, get };
    });
    c.net.heal();
    await c.run(20_000);
    expect(lone.node.height).toBe(stuckAt);
    expect(lone.node.rejected.length).toBeGreaterThan(0);
    expect(lone.node.rejected.every((e) => e.code === "INVALID_COMMIT" || e.code === "INVALID_BLOCK")).toBe(
      true,
    );
    for (const { store, get } of honestGets) store.get = get;
    const target = c.maxHeight([0, 1, 2]) + 2;
    expect(await c.run(120_000, () => c.minHeight() >= target)).toBe(true);
    c.assertNoFork();
    c.assertSameAppState();
    expect(c.errors()).toEqual([]);
  });
  it("a Byzantine validator that equivocates on every proposal and vote, and stays, cannot fork the chain", async () => {
    const c = await cluster({
      seed: 10,
      powers: [1n, 1n, 1n, 1n],
      doubleSigners: [1],
      punish: false,
      loss: 0.05,
    });
    expect(await c.run(300_000, () => c.minHeight([0, 2, 3]) >= 30)).toBe(true);
    expect(c.assertNoFork()).toBeGreaterThanOrEqual(30);
    c.assertSameAppState();
    const cheater = hex(c.validators[1]!.signer.publicKey);
    for (const i of [0, 2, 3]) {
      const v = c.validators[i]!;
      expect(v.evidence.length).toBeGreaterThan(0);
      expect(v.evidence.every((e) => hex(e.voteA.signer) === cheater)).toBe(true);
    }
    // It proposed some heights and equivocated there: the honest nodes still agree on one block each.
    const node = c.validators[0]!.node;
    let byCheater = 0;
    for (let h = 1; h <= 30; h++)
      if (hex((await node.store.get(h))!.block.header.proposer) === cheater) byCheater++;
    expect(byCheater).toBeGreaterThan(0);
    expect(c.errors()).toEqual([]);
  });
  it("random seeds, loss, delays, a Byzantine validator and a healed partition: never a fork, always progress", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 0, max: 3 }),
        fc.constantFrom(
          [
            ["v0", "v1"],
            ["v2", "v3"],
          ],
          [["v0", "v1", "v2"], ["v3"]],
          [["v0"], ["v1"], ["v2"], ["v3"]],
        ),
        async (seed, lossPercent, byzantine, groups) => {
          const c = await cluster({
            seed,
            powers: [1n, 1n, 1n, 1n],
            loss: lossPercent / 100,
            maxDelayMs: 250,
            doubleSigners: [byzantine],
            punish: false,
          });
          const honest = [0, 1, 2, 3].filter((i) => i !== byzantine);
          expect(await c.run(600_000, () => c.minHeight(honest) >= 3)).toBe(true);
          c.net.partition(groups);
          await c.run(10_000);
          c.net.heal();
          const target = c.maxHeight(honest) + 5;
          expect(await c.run(600_000, () => c.minHeight(honest) >= target)).toBe(true);
          c.assertNoFork();
          c.assertSameAppState();
          expect(c.errors()).toEqual([]);
          c.stop();
        },
      ),
      { numRuns: 8, seed: 42 },
    );
  });
  it("logs every signed vote before sending it, and never sends one its vote log refuses", async () => {
    const c = new Cluster({ seed: 12, powers: [1n, 1n, 1n, 1n], voteLogs: true });
    clusters.push(c);
    const v0 = c.validators[0]!;
    // As if v0 had signed a prevote for another block at height 2, round 0, then crashed.
    const earlier = {
      v: 1,
      type: "prevote",
      chainId: CHAIN_ID,
      height: 2,
      round: 0,
      blockHash: new Uint8Array(32).fill(7),
    } as const;
    await v0.voteLog!.record(earlier);
    await c.start();
    expect(await c.run(60_000, () => c.minHeight() >= 10)).toBe(true);
    c.assertNoFork();
    // The others never saw v0 sign two prevotes there: no evidence against it.
    for (const v of c.validators.slice(1)) expect(v.evidence).toEqual([]);
    expect(v0.node.errors.map((e) => (e as { code?: string }).code)).toContain("VOTE_CONFLICT");
    // Every validator prevotes in round 0 of each height; v0's prevote of the last committed
    // height is in its log, and committed heights below it were pruned.
    const last = v0.node.height - 1;
    expect(await v0.voteLog!.get(last, 0, "prevote")).toMatchObject({
      type: "prevote",
      height: last,
      round: 0,
    });
    expect(await v0.voteLog!.get(2, 0, "prevote")).toBeUndefined();
  });
});
