/** Unit tests of each rule of the state machine. */
import { CRITERIA, type ScoreVector, sha256Parts, sign, signingBytes, type Vote } from "@deepshard/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { aggregateScores, aggregateSegments, BPS, weightedMedian } from "../src/state/aggregate.ts";
import { exp2Fraction, mulExp2, priceAt } from "../src/state/fixedpoint.ts";
import { fromHex, toHex, trainingCommitment } from "../src/state/hashing.ts";
import { checkInvariants, checkSupply } from "../src/state/invariants.ts";
import { CHAIN_ID, TestChain } from "./sim/harness.ts";

const AGG = {
  criteriaWeightsBps: [2000, 2000, 2000, 2000, 2000],
  baseThresholdBps: 5000,
  disagreementFactorBps: 20000,
};
const flat = (s: number) => [s, s, s, s, s];
const scores = (s: number): ScoreVector =>
  Object.fromEntries(CRITERIA.map((c) => [c, s])) as unknown as ScoreVector;

describe("aggregation", () => {
  it("weighted median: the smallest value reaching half the stake", () => {
    expect(weightedMedian([])).toBeUndefined();
    expect(weightedMedian([{ value: 3, weight: 1n }])).toBe(3);
    expect(
      weightedMedian([
        { value: 10, weight: 1n },
        { value: 0, weight: 1n },
        { value: 5, weight: 1n },
      ]),
    ).toBe(5);
    // One heavy validator outweighs three light ones.
    expect(
      weightedMedian([
        { value: 9000, weight: 10n },
        { value: 0, weight: 3n },
        { value: 100, weight: 3n },
        { value: 200, weight: 3n },
      ]),
    ).toBe(9000);
    expect(
      weightedMedian([
        { value: 1, weight: 1n },
        { value: 2, weight: 1n },
      ]),
    ).toBe(1);
  });

  it("unanimous high scores are accepted with no disagreement", () => {
    const a = aggregateScores(
      [
        { weight: 5n, scores: flat(8000) },
        { weight: 5n, scores: flat(8000) },
      ],
      AGG,
    );
    expect(a).toMatchObject({ value: 8000, disagreement: 0, threshold: 5000, accepted: true });
  });

  it("the threshold rises with disagreement", () => {
    let previous = -1;
    for (const spread of [0, 500, 1000, 2000, 4000]) {
      const a = aggregateScores(
        [
          { weight: 1n, scores: flat(7000 - spread) },
          { weight: 1n, scores: flat(7000) },
          { weight: 1n, scores: flat(Math.min(BPS, 7000 + spread)) },
        ],
        AGG,
      );
      expect(a.threshold).toBeGreaterThan(previous);
      previous = a.threshold;
    }
  });

  it("no mob rule: a bare majority cannot force data in", () => {
    const a = aggregateScores(
      [
        { weight: 51n, scores: flat(BPS) },
        { weight: 49n, scores: flat(0) },
      ],
      AGG,
    );
    expect(a.value).toBe(BPS);
    expect(a.accepted).toBe(false);
    // A broad consensus can.
    const b = aggregateScores(
      [
        { weight: 90n, scores: flat(BPS) },
        { weight: 10n, scores: flat(0) },
      ],
      AGG,
    );
    expect(b.accepted).toBe(true);
  });

  it("property: opposition by more than (1 − base)/k of the stake always rejects", () => {
    // base 5000, k 2: more than a quarter of the stake scoring 0 keeps any data out.
    const score = fc.integer({ min: 0, max: BPS });
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            weight: fc.bigInt({ min: 1n, max: 1000n }),
            scores: fc.tuple(score, score, score, score, score),
          }),
          {
            minLength: 1,
            maxLength: 12,
          },
        ),
        fc.integer({ min: 2501, max: 9999 }),
        (majority, oppositionBps) => {
          let majorityWeight = 0n;
          for (const v of majority) majorityWeight += v.weight;
          // opposition / (majority + opposition) = oppositionBps / 10000, rounded up
          const opposition =
            (majorityWeight * BigInt(oppositionBps) + BigInt(BPS - oppositionBps) - 1n) /
            BigInt(BPS - oppositionBps);
          const votes = [...majority, { weight: opposition, scores: flat(0) }];
          expect(aggregateScores(votes, AGG).accepted).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("segments: per-range weighted median, default ranges dropped, equal neighbours merged", () => {
    const segs = aggregateSegments(
      [
        { weight: 3n, segments: [{ offset: 0, length: 10, weight: 2000 }] },
        { weight: 3n, segments: [{ offset: 5, length: 10, weight: 2000 }] },
        { weight: 1n, segments: [] },
      ],
      100,
    );
    // [0,5): 2000 (3) vs 10000 (4) → 10000; [5,10): 2000 (6) → 2000; [10,15): 2000 (3) vs 10000 (4) → 10000
    expect(segs).toEqual([{ offset: 5, length: 5, weight: 2000 }]);
    expect(aggregateSegments([{ weight: 1n, segments: [{ offset: 0, length: 50, weight: 0 }] }], 20)).toEqual(
      [{ offset: 0, length: 20, weight: 0 }],
    );
  });
});

describe("price", () => {
  it("exp2 in fixed point matches 2^x closely", () => {
    const ONE = 1n << 128n;
    for (const x of [0, 0.25, 0.5, 0.75, 0.999]) {
      const f = BigInt(Math.floor(x * 2 ** 64));
      const got = Number((exp2Fraction(f) * 1_000_000_000n) / ONE) / 1e9;
      expect(got).toBeCloseTo(2 ** x, 8);
    }
    expect(mulExp2(1000n, 3n, 1n)).toBe(8000n);
    expect(priceAt(1000n, 0n, 100n)).toBe(1000n);
    expect(priceAt(1000n, 100n, 100n)).toBe(2000n);
    expect(priceAt(1000n, 50n, 100n)).toBe(1414n);
  });

  it("property: the price never falls as value grows", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 12n }),
        fc.bigInt({ min: 0n, max: 10n ** 9n }),
        fc.bigInt({ min: 0n, max: 10n ** 6n }),
        fc.bigInt({ min: 1n, max: 10n ** 8n }),
        (base, value, step, doubling) => {
          expect(priceAt(base, value + step, doubling)).toBeGreaterThanOrEqual(
            priceAt(base, value, doubling),
          );
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("a huge value is capped instead of allocating a huge number", () => {
    expect(priceAt(1n, 10n ** 30n, 1n).toString(2).length).toBeLessThan(4200);
  });
});

describe("accounts", () => {
  it("transfers move value; the fee goes to the proposer; replays and wrong chains are refused", () => {
    const c = new TestChain();
    const [alice, bob] = c.users;
    const proposer = c.validators[0]!;
    const before = c.balance(proposer);
    const t = c.tx(alice!, { type: "transfer", to: bob!.publicKey, amount: 500n }, { fee: 7n });
    expect(c.block([t]).map((r) => r.code)).toEqual(["OK"]);
    expect(c.balance(alice!)).toBe(1_000_000n - 507n);
    expect(c.balance(bob!)).toBe(1_000_500n);
    expect(c.balance(proposer) - before).toBe(7n + c.state.tables.params.get("params")!.blockReward);
    const results = c.block([
      t,
      c.tx(alice!, { type: "transfer", to: bob!.publicKey, amount: 1n }, { chainId: "other-chain" }),
      c.tx(alice!, { type: "transfer", to: bob!.publicKey, amount: 1n }, { fee: 0n }),
      c.tx(alice!, { type: "transfer", to: bob!.publicKey, amount: 1n }, { nonce: 5n }),
    ]);
    expect(results.map((r) => r.code)).toEqual([
      "TX_BAD_NONCE",
      "TX_WRONG_CHAIN",
      "TX_FEE_TOO_LOW",
      "TX_BAD_NONCE",
    ]);
    expect(results.every((r) => !r.charged)).toBe(true);
    expect(c.state.tables.accounts.get(alice!.address)!.nonce).toBe(1n);
  });

  it("a failing transaction pays its fee and consumes its nonce, but has no effect", () => {
    const c = new TestChain();
    const [alice, bob] = c.users;
    const [r] = c.block([c.tx(alice!, { type: "transfer", to: bob!.publicKey, amount: 10_000_000n })]);
    expect(r).toMatchObject({ code: "TX_INSUFFICIENT_FUNDS", charged: true });
    expect(c.balance(alice!)).toBe(1_000_000n - 1n);
    expect(c.balance(bob!)).toBe(1_000_000n);
    expect(c.state.tables.accounts.get(alice!.address)!.nonce).toBe(1n);
    checkInvariants(c.state);
  });

  it("checkTx refuses what the block would refuse, without changing the state", () => {
    const c = new TestChain();
    const [alice, bob] = c.users;
    const root = c.state.root;
    expect(() =>
      c.machine.checkTx(c.state, c.tx(alice!, { type: "transfer", to: bob!.publicKey, amount: 1n })),
    ).not.toThrow();
    expect(() =>
      c.machine.checkTx(
        c.state,
        c.tx(alice!, { type: "transfer", to: bob!.publicKey, amount: 1n }, { nonce: 9n }),
      ),
    ).toThrow(expect.objectContaining({ code: "TX_BAD_NONCE" }));
    expect(c.state.root).toBe(root);
  });
});

describe("staking", () => {
  it("unbonding matures after the delay, and only then", () => {
    const c = new TestChain({ params: { unbondingDelay: 5 } });
    const v = c.validators[1]!;
    const balance = c.balance(v);
    c.block([c.tx(v, { type: "unbond", amount: 4_000n })]);
    const h = c.meta.height;
    expect(c.bonded(v)).toBe(6_000n);
    c.until(h + 4);
    expect(c.balance(v)).toBe(balance - 1n);
    c.block();
    expect(c.meta.height).toBe(h + 5);
    expect(c.balance(v)).toBe(balance - 1n + 4_000n);
    checkSupply(c.state);
  });

  it("the validator set is the top N by stake", () => {
    const c = new TestChain({
      validators: 4,
      stake: [10_000n, 20_000n, 30_000n, 40_000n],
      params: { maxValidators: 3 },
    });
    expect(c.meta.validators.map((v) => v.power)).toEqual([40_000n, 30_000n, 20_000n]);
    c.block([c.tx(c.validators[0]!, { type: "bond", amount: 25_000n })]);
    expect(c.meta.validators.map((v) => v.power)).toEqual([40_000n, 35_000n, 30_000n]);
    expect(c.power(c.validators[1]!)).toBeUndefined();
  });

  it("downtime jails and slashes; the validator returns after the jail period", () => {
    const c = new TestChain({
      params: { downtime: { window: 10, minSignedBps: 7_000, jailBlocks: 5, slashBps: 1_000 } },
    });
    const lazy = c.validators[2]!;
    c.block();
    // 10 × 30% = 3 misses allowed; the fourth jails.
    for (let i = 0; i < 3; i++) c.block([], { offline: [lazy] });
    expect(c.power(lazy)).toBe(10_000n);
    c.block([], { offline: [lazy] });
    const jailedAt = c.meta.height;
    expect(c.power(lazy)).toBeUndefined();
    expect(c.bonded(lazy)).toBe(9_000n);
    expect(c.meta.burned).toBe(1_000n);
    checkInvariants(c.state);
    c.until(jailedAt + 4);
    expect(c.power(lazy)).toBe(9_000n);
  });

  it("double-signing evidence slashes, tombstones for good, and counts once", () => {
    const c = new TestChain({ params: { doubleSign: { slashBps: 2_000, maxEvidenceAge: 100 } } });
    c.until(3);
    const culprit = c.validators[3]!;
    c.block([c.tx(culprit, { type: "unbond", amount: 1_000n })]);
    const vote = (blockHash: Uint8Array | null) => {
      const payload: Vote = { v: 1, type: "prevote", chainId: CHAIN_ID, height: 2, round: 0, blockHash };
      return {
        payload,
        signer: culprit.publicKey,
        signature: sign(culprit.secretKey, signingBytes(payload)),
      };
    };
    const a = vote(new Uint8Array(32).fill(1));
    const b = vote(null);
    const reporter = c.users[0]!;
    const forged = { ...b, signature: new Uint8Array(64).fill(9) };
    const [bad, same, good] = c.block([
      c.tx(reporter, { type: "evidence", voteA: a, voteB: forged }),
      c.tx(reporter, { type: "evidence", voteA: a, voteB: a }, { nonce: 2n }),
      c.tx(reporter, { type: "evidence", voteA: a, voteB: b }, { nonce: 3n }),
    ]);
    expect(bad!.code).toBe("TX_INVALID_EVIDENCE");
    expect(same!.code).toBe("TX_INVALID_EVIDENCE");
    expect(good!.code).toBe("OK");
    expect(c.bonded(culprit)).toBe(7_200n);
    const pending = [...c.state.tables.unbonding.values()].find((u) => u.owner === culprit.address)!;
    expect(pending.amount).toBe(800n);
    expect(c.meta.burned).toBe(1_800n + 200n);
    expect(c.state.tables.validators.get(culprit.address)!.tombstoned).toBe(true);
    expect(c.power(culprit)).toBeUndefined();
    const [again, rebond] = c.block([
      c.tx(reporter, { type: "evidence", voteA: a, voteB: b }),
      c.tx(culprit, { type: "bond", amount: 50_000n }),
    ]);
    expect(again!.code).toBe("TX_DUPLICATE");
    expect(rebond!.code).toBe("TX_TOMBSTONED");
    checkInvariants(c.state);
  });
});

function submitAndVote(c: TestChain, votes: number[], stake = 100n) {
  const informant = c.users[0]!;
  const contentHash = new Uint8Array(32).fill(c.meta.height + 1);
  const submit = c.tx(informant, { type: "data.submit", contentHash, size: 1000, stake });
  expect(c.block([submit])[0]!.code).toBe("OK");
  const txs = votes.map((s, i) =>
    c.tx(c.validators[i]!, { type: "data.vote", submission: submit.hash, scores: scores(s) }),
  );
  expect(c.block(txs).map((r) => r.code)).toEqual(votes.map(() => "OK"));
  return { informant, contentHash, submit };
}

describe("data", () => {
  const params = { data: { votingWindow: 3 }, training: { batchSize: 2 } };

  it("accepted data returns the stake plus a reward growing with value, and joins the queue", () => {
    const c = new TestChain({ params });
    const balance = c.balance(c.users[0]!);
    const { contentHash } = submitAndVote(c, [9000, 9000, 9000, 9000]);
    c.until(c.meta.height + 3);
    const record = c.state.tables.data.get(Buffer.from(contentHash).toString("hex"))!;
    expect(record).toMatchObject({ status: "accepted", value: 9000, reward: 90n });
    expect(c.balance(c.users[0]!)).toBe(balance - 1n + 90n);
    expect(c.state.tables.queue.size).toBe(1);
    expect(c.meta.accumulatedValue).toBe(9000n);
    expect(c.meta.price).toBeGreaterThan(100n);
    checkInvariants(c.state);
  });

  it("rejected data burns the stake; data without quorum is returned", () => {
    const c = new TestChain({ params });
    const balance = c.balance(c.users[0]!);
    submitAndVote(c, [9000, 9000, 0, 0]);
    c.until(c.meta.height + 3);
    expect(c.balance(c.users[0]!)).toBe(balance - 101n);
    expect(c.meta.burned).toBe(100n);
    submitAndVote(c, [9000]);
    c.until(c.meta.height + 3);
    expect(c.balance(c.users[0]!)).toBe(balance - 102n);
    expect([...c.state.tables.data.values()].map((d) => d.status).sort()).toEqual(["expired", "rejected"]);
    checkInvariants(c.state);
  });

  it("only active validators vote, once, inside the window; the same content cannot be submitted twice", () => {
    const c = new TestChain({ params });
    const { submit, contentHash } = submitAndVote(c, [5000]);
    const results = c.block([
      c.tx(c.validators[0]!, { type: "data.vote", submission: submit.hash, scores: scores(1) }),
      c.tx(c.users[1]!, { type: "data.vote", submission: submit.hash, scores: scores(1) }),
      c.tx(c.users[1]!, { type: "data.submit", contentHash, size: 5, stake: 50n }, { nonce: 2n }),
    ]);
    expect(results.map((r) => r.code)).toEqual(["TX_DUPLICATE", "TX_NOT_VALIDATOR", "TX_DUPLICATE"]);
    c.until(c.meta.height + 3);
    expect(
      c.block([c.tx(c.validators[1]!, { type: "data.vote", submission: submit.hash, scores: scores(1) })])[0]!
        .code,
    ).toBe("TX_UNKNOWN_TARGET");
  });
});

describe("training rounds", () => {
  const params = {
    data: { votingWindow: 2 },
    training: {
      batchSize: 2,
      commitWindow: 2,
      revealWindow: 2,
      verdictWindow: 2,
      stake: 1_000n,
      roundMint: 3_000n,
      roundValue: 5_000n,
    },
  };

  function queueBatch(c: TestChain) {
    submitAndVote(c, [9000, 9000, 9000, 9000]);
    submitAndVote(c, [8000, 8000, 8000, 8000]);
    c.until(c.meta.height + 2);
  }

  it("opens at the batch size, runs commit → reveal → verdict, slashes the rejected and pays the honest", () => {
    const c = new TestChain({ params });
    queueBatch(c);
    expect(c.meta.activeRound).toBe(0);
    const round = c.state.tables.rounds.get("000000000000")!;
    expect(round.batch.length).toBe(2);
    expect(round.baseWeightsId).toBe(c.meta.canonicalWeightsId);
    // The seed is the hash of the block that opened the round (the beacon).
    expect(round.seed).toBe(toHex(sha256Parts([new TextEncoder().encode(`block-${round.openedAt}`)])));
    expect(c.state.tables.queue.size).toBe(0);
    const [honest1, honest2, cheat] = c.users.slice(1) as [
      (typeof c.users)[0],
      (typeof c.users)[0],
      (typeof c.users)[0],
    ];
    const w = (n: number) => new Uint8Array(32).fill(n);
    const salt = new Uint8Array(32).fill(77);
    const commits = [honest1, honest2, cheat].map((t, i) =>
      c.tx(t!, { type: "training.commit", round: 0, commitment: trainingCommitment(w(i + 1), salt) }),
    );
    const early = c.tx(honest1!, { type: "training.reveal", round: 0, weightsId: w(1), salt }, { nonce: 2n });
    expect(c.block([...commits, early]).map((r) => r.code)).toEqual(["OK", "OK", "OK", "TX_WRONG_PHASE"]);
    c.block();
    const reveals = [honest1, honest2, cheat].map((t, i) =>
      c.tx(t!, { type: "training.reveal", round: 0, weightsId: w(i + 1), salt }),
    );
    const wrongSalt = c.tx(c.validators[0]!, { type: "training.reveal", round: 0, weightsId: w(1), salt });
    expect(c.block([...reveals, wrongSalt]).map((r) => r.code)).toEqual([
      "OK",
      "OK",
      "OK",
      "TX_UNKNOWN_TARGET",
    ]);
    c.block();
    const verdicts = c.validators.map((v, i) =>
      c.tx(v, {
        type: "training.verdict",
        round: 0,
        verdicts: [
          { trainer: honest1!.publicKey, accept: true, reasons: [] },
          { trainer: honest2!.publicKey, accept: i < 2, reasons: [] },
          { trainer: cheat!.publicKey, accept: false, reasons: ["copy"] },
        ].sort((a, b) => Buffer.compare(a.trainer, b.trainer)),
      }),
    );
    const before = [honest1, honest2, cheat].map((t) => c.balance(t!));
    const minted = c.meta.minted;
    expect(c.block(verdicts).every((r) => r.code === "OK")).toBe(true);
    c.block();
    const done = c.state.tables.rounds.get("000000000000")!;
    expect(done.status).toBe("completed");
    expect(done.canonicalWeightsId).toBe(Buffer.from(w(1)).toString("hex"));
    expect(c.meta.canonicalWeightsId).toBe(Buffer.from(w(1)).toString("hex"));
    expect(c.state.tables.weights.size).toBe(2);
    // Honest trainers: stake back + half of the cheat's stake + half of the mint.
    expect(c.balance(honest1!) - before[0]!).toBe(1_000n + 500n + 1_500n);
    expect(c.balance(honest2!) - before[1]!).toBe(1_000n + 500n + 1_500n);
    expect(c.balance(cheat!) - before[2]!).toBe(0n);
    expect(c.meta.minted - minted).toBe(3_000n + 2n * c.state.tables.params.get("params")!.blockReward);
    expect(c.meta.activeRound).toBe(-1);
    checkInvariants(c.state);
  });

  it("a round without an accepted submission fails and returns its batch to the queue; non-revealers lose their stake", () => {
    const c = new TestChain({ params });
    queueBatch(c);
    const t = c.users[1]!;
    c.block([c.tx(t, { type: "training.commit", round: 0, commitment: new Uint8Array(32) })]);
    const burned = c.meta.burned;
    c.until(c.meta.height + 6);
    expect(c.state.tables.rounds.get("000000000000")!.status).toBe("failed");
    expect(c.meta.burned - burned).toBe(1_000n);
    // The batch came back and a new round opened on the same base weights.
    expect(c.meta.activeRound).toBe(1);
    expect(c.state.tables.rounds.get("000000000001")!.batchRoot).toBe(
      c.state.tables.rounds.get("000000000000")!.batchRoot,
    );
    checkInvariants(c.state);
  });

  it("a commitment mismatch is refused", () => {
    const c = new TestChain({ params });
    queueBatch(c);
    const t = c.users[1]!;
    const salt = new Uint8Array(32).fill(1);
    c.block([
      c.tx(t, {
        type: "training.commit",
        round: 0,
        commitment: trainingCommitment(new Uint8Array(32), salt),
      }),
    ]);
    c.block();
    const [r] = c.block([
      c.tx(t, { type: "training.reveal", round: 0, weightsId: new Uint8Array(32).fill(5), salt }),
    ]);
    expect(r!.code).toBe("TX_COMMITMENT_MISMATCH");
  });
});

describe("weights.buy", () => {
  it("records a license at the current price, burns it, refuses duplicates, unknown weights and a low maxPrice", () => {
    const c = new TestChain();
    const buyer = c.users[0]!;
    const weightsId = fromHex(c.meta.canonicalWeightsId);
    const price = c.meta.price;
    const results = c.block([
      c.tx(buyer, { type: "weights.buy", weightsId, maxPrice: price - 1n }),
      c.tx(buyer, { type: "weights.buy", weightsId, maxPrice: price }, { nonce: 2n }),
      c.tx(buyer, { type: "weights.buy", weightsId, maxPrice: price }, { nonce: 3n }),
      c.tx(
        buyer,
        { type: "weights.buy", weightsId: new Uint8Array(32).fill(3), maxPrice: price },
        { nonce: 4n },
      ),
    ]);
    expect(results.map((r) => r.code)).toEqual([
      "TX_PRICE_ABOVE_MAX",
      "OK",
      "TX_DUPLICATE",
      "TX_UNKNOWN_TARGET",
    ]);
    expect(c.state.tables.licenses.get(`${buyer.address}/${c.meta.canonicalWeightsId}`)).toMatchObject({
      price,
    });
    expect(c.meta.burned).toBe(price);
    checkInvariants(c.state);
  });
});
