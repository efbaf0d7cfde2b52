import { sha256 } from "@deepshard/protocol";
import { describe, expect, it } from "vitest";
import {
  type Commit,
  ConsensusError,
  type ConsensusMessage,
  type ConsensusSigner,
  commitPrecommit,
  type EngineAction,
  keySigner,
  protocolCrypto,
  TendermintEngine,
  ValidatorSet,
  type VoteType,
  verifyCommit,
  verifyEvidence,
} from "../src/index.ts";

const CHAIN = "deepshard-test";
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const signers = Array.from({ length: 5 }, (_, i) => keySigner(sha256(Uint8Array.of(i, 42))));

/** Values are byte strings; their id is their sha256. */
type Value = Uint8Array;
const A = new TextEncoder().encode("block A");
const B = new TextEncoder().encode("block B");

function setOf(powers: bigint[], keys: ConsensusSigner[] = signers): ValidatorSet {
  return ValidatorSet.create(powers.map((power, i) => ({ publicKey: keys[i]!.publicKey, power })));
}

function signerOf(address: string): ConsensusSigner {
  return signers.find((s) => hex(s.publicKey) === address)!;
}

function proposal(
  set: ValidatorSet,
  height: number,
  round: number,
  value: Value,
  polRound = -1,
): ConsensusMessage<Value> {
  const signer = signerOf(set.proposer(round).address);
  const payload = {
    v: 1,
    type: "proposal",
    chainId: CHAIN,
    height,
    round,
    polRound,
    blockHash: sha256(value),
  } as const;
  const signature = signer.sign(protocolCrypto.signingBytes(payload));
  return { v: 1, type: "proposal", proposal: { payload, signer: signer.publicKey, signature }, block: value };
}

function vote(
  signer: ConsensusSigner,
  type: VoteType,
  height: number,
  round: number,
  value: Value | null,
): ConsensusMessage<Value> {
  const payload = { v: 1, type, chainId: CHAIN, height, round, blockHash: value && sha256(value) } as const;
  const signature = signer.sign(protocolCrypto.signingBytes(payload));
  return { v: 1, type: "vote", vote: { payload, signer: signer.publicKey, signature } };
}

function engineFor(signer: ConsensusSigner | undefined) {
  return new TendermintEngine<Value>({ chainId: CHAIN, crypto: protocolCrypto, valueHash: sha256, signer });
}

/** Feeds an event, answering validation requests with "valid" as the application would. */
function feed(engine: TendermintEngine<Value>, actions: EngineAction<Value>[]): EngineAction<Value>[] {
  const out: EngineAction<Value>[] = [];
  for (const a of actions) {
    out.push(a);
    if (a.type === "validateValue") {
      out.push(
        ...feed(
          engine,
          engine.handle({ type: "validated", height: a.height, valueHash: a.valueHash, valid: true }),
        ),
      );
    }
  }
  return out;
}

const sent = (actions: EngineAction<Value>[]) =>
  actions.flatMap((a) =>
    a.type === "broadcast" && a.message.type === "vote" ? [a.message.vote.payload] : [],
  );

describe("ValidatorSet", () => {
  it("needs strictly more than 2/3 of the power for a quorum and more than 1/3 to skip rounds", () => {
    const set = setOf([40n, 30n, 20n, 10n]);
    expect(set.totalPower).toBe(100n);
    expect(set.hasQuorum(66n)).toBe(false);
    expect(set.hasQuorum(67n)).toBe(true);
    expect(set.hasOneThird(33n)).toBe(false);
    expect(set.hasOneThird(34n)).toBe(true);
    const equal = setOf([1n, 1n, 1n]);
    // Exactly 2/3 is not enough.
    expect(equal.hasQuorum(2n)).toBe(false);
    expect(equal.hasQuorum(3n)).toBe(true);
  });

  it("chooses proposers in proportion to power, over heights and over rounds", () => {
    const powers = [40n, 30n, 20n, 10n];
    const byHeight = new Map<string, number>();
    let set = setOf(powers);
    for (let h = 0; h < 1000; h++) {
      const p = set.proposer(0).address;
      byHeight.set(p, (byHeight.get(p) ?? 0) + 1);
      set = set.next();
    }
    expect(signers.slice(0, 4).map((s) => byHeight.get(hex(s.publicKey)))).toEqual([400, 300, 200, 100]);
    const byRound = new Map<string, number>();
    const one = setOf(powers);
    for (let r = 0; r < 1000; r++) {
      const p = one.proposer(r).address;
      byRound.set(p, (byRound.get(p) ?? 0) + 1);
    }
    expect(signers.slice(0, 4).map((s) => byRound.get(hex(s.publicKey)))).toEqual([400, 300, 200, 100]);
  });

  it("gives the same proposer whatever order rounds are asked in", () => {
    const a = setOf([5n, 3n, 1n, 1n]);
    const b = setOf([5n, 3n, 1n, 1n]);
    const late = a.proposer(17).address;
    for (let r = 0; r <= 17; r++) b.proposer(r);
    expect(b.proposer(17).address).toBe(late);
  });

  it("admits a new validator with a low priority and removes one at power 0", () => {
    const set = setOf([1n, 1n, 1n]);
    const joined = set.next([{ publicKey: signers[3]!.publicKey, power: 1n }]);
    expect(joined.size).toBe(4);
    // The newcomer does not propose straight away.
    expect(joined.proposer(0).address).not.toBe(hex(signers[3]!.publicKey));
    const left = joined.next([{ publicKey: signers[0]!.publicKey, power: 0n }]);
    expect(left.powerOf(hex(signers[0]!.publicKey))).toBe(0n);
    expect(left.size).toBe(3);
  });

  it("refuses empty sets, duplicate keys and non-positive power with typed errors", () => {
    const bad = [
      () => ValidatorSet.create([]),
      () => setOf([1n, 1n], [signers[0]!, signers[0]!]),
      () => setOf([0n]),
      () => ValidatorSet.create([{ publicKey: new Uint8Array(31), power: 1n }]),
      () => setOf([1n]).next([{ publicKey: signers[0]!.publicKey, power: 0n }]),
    ];
    for (const f of bad) {
      expect(f).toThrow(ConsensusError);
      try {
        f();
      } catch (err) {
        expect((err as ConsensusError).code).toBe("INVALID_VALIDATOR_SET");
      }
    }
  });
});

describe("TendermintEngine", () => {
  it("decides alone as the only validator", () => {
    const set = setOf([7n]);
    const engine = engineFor(signers[0]);
    const actions = engine.handle({ type: "start", height: 1, validators: set });
    expect(actions.map((a) => a.type)).toContain("requestValue");
    const out = feed(engine, engine.handle({ type: "value", height: 1, round: 0, value: A }));
    const decide = out.find((a) => a.type === "decide");
    expect(decide).toBeDefined();
    if (decide?.type !== "decide") return;
    expect(hex(decide.commit.blockHash)).toBe(hex(sha256(A)));
    verifyCommit(decide.commit, {
      chainId: CHAIN,
      validators: set,
      crypto: protocolCrypto,
      blockHash: sha256(A),
      height: 1,
    });
  });

  it("locks on a polka, refuses other values while locked, and re-accepts the locked value", () => {
    const set = setOf([1n, 1n, 1n, 1n, 1n]);
    // A validator that proposes none of rounds 0–3.
    const me = signerOf(set.proposer(4).address);
    const others = signers.filter((s) => s !== me);
    const engine = engineFor(me);
    engine.handle({ type: "start", height: 1, validators: set });
    let out = feed(engine, engine.handle({ type: "message", message: proposal(set, 1, 0, A) }));
    expect(sent(out)).toMatchObject([{ type: "prevote", round: 0, blockHash: sha256(A) }]);
    for (const s of others.slice(0, 3))
      out = feed(engine, engine.handle({ type: "message", message: vote(s, "prevote", 1, 0, A) }));
    // Line 36: 4 of 5 prevoted A, so it precommits A and locks.
    expect(sent(out)).toMatchObject([{ type: "precommit", round: 0, blockHash: sha256(A) }]);
    expect(engine.lock).toEqual({ round: 0, valueHash: hex(sha256(A)) });
    // Precommits for nil from the others: no decision, a precommit timeout, then round 1.
    for (const s of others)
      out = engine.handle({ type: "message", message: vote(s, "precommit", 1, 0, null) });
    expect(out.filter((a) => a.type === "decide")).toEqual([]);
    engine.handle({ type: "timeout", kind: "precommit", height: 1, round: 0 });
    expect(engine.round).toBe(1);
    // Line 22: a fresh proposal of another value gets a nil prevote while locked on A.
    out = feed(engine, engine.handle({ type: "message", message: proposal(set, 1, 1, B) }));
    expect(sent(out)).toMatchObject([{ type: "prevote", round: 1, blockHash: null }]);
    for (const s of others) engine.handle({ type: "message", message: vote(s, "prevote", 1, 1, null) });
    engine.handle({ type: "timeout", kind: "precommit", height: 1, round: 1 });
    for (const s of others) engine.handle({ type: "message", message: vote(s, "precommit", 1, 1, null) });
    engine.handle({ type: "timeout", kind: "precommit", height: 1, round: 1 });
    expect(engine.round).toBe(2);
    // Line 28: A re-proposed with its proof-of-lock round 0 gets a prevote for A.
    out = feed(engine, engine.handle({ type: "message", message: proposal(set, 1, 2, A, 0) }));
    expect(sent(out)).toMatchObject([{ type: "prevote", round: 2, blockHash: sha256(A) }]);
  });

  it("unlocks for a value with a newer proof-of-lock (line 28)", () => {
    const set = setOf([1n, 1n, 1n, 1n, 1n]);
    const me = signerOf(set.proposer(4).address);
    const others = signers.filter((s) => s !== me);
    const engine = engineFor(me);
    engine.handle({ type: "start", height: 1, validators: set });
    feed(engine, engine.handle({ type: "message", message: proposal(set, 1, 0, A) }));
    for (const s of others.slice(0, 3))
      engine.handle({ type: "message", message: vote(s, "prevote", 1, 0, A) });
    expect(engine.lock.round).toBe(0);
    for (const s of others) engine.handle({ type: "message", message: vote(s, "precommit", 1, 0, null) });
    engine.handle({ type: "timeout", kind: "precommit", height: 1, round: 0 });
    // Round 1: 4 others prevote B (a polka this node missed the proposal for).
    for (const s of others) engine.handle({ type: "message", message: vote(s, "prevote", 1, 1, B) });
    for (const s of others) engine.handle({ type: "message", message: vote(s, "precommit", 1, 1, null) });
    engine.handle({ type: "timeout", kind: "propose", height: 1, round: 1 });
    engine.handle({ type: "timeout", kind: "prevote", height: 1, round: 1 });
    engine.handle({ type: "timeout", kind: "precommit", height: 1, round: 1 });
    expect(engine.round).toBe(2);
    const out = feed(engine, engine.handle({ type: "message", message: proposal(set, 1, 2, B, 1) }));
    expect(sent(out)).toMatchObject([{ type: "prevote", round: 2, blockHash: sha256(B) }]);
  });

  it("skips to a round where more than 1/3 of the power already is (line 55)", () => {
    const set = setOf([1n, 1n, 1n, 1n]);
    const engine = engineFor(signers[0]);
    engine.handle({ type: "start", height: 1, validators: set });
    const [, s1, s2] = signers;
    engine.handle({ type: "message", message: vote(s1!, "prevote", 1, 5, null) });
    expect(engine.round).toBe(0);
    engine.handle({ type: "message", message: vote(s2!, "precommit", 1, 5, null) });
    expect(engine.round).toBe(5);
  });

  it("reports a double vote once, as verifiable evidence", () => {
    const set = setOf([1n, 1n, 1n, 1n]);
    const engine = engineFor(signers[0]);
    engine.handle({ type: "start", height: 1, validators: set });
    const cheat = signers[1]!;
    engine.handle({ type: "message", message: vote(cheat, "prevote", 1, 0, A) });
    const out = engine.handle({ type: "message", message: vote(cheat, "prevote", 1, 0, B) });
    const evidence = out.flatMap((a) => (a.type === "evidence" ? [a.evidence] : []));
    expect(evidence).toHaveLength(1);
    expect(
      hex(verifyEvidence(evidence[0]!, { chainId: CHAIN, validators: set, crypto: protocolCrypto })),
    ).toBe(hex(cheat.publicKey));
    // The same pair again is not reported twice.
    const again = engine.handle({ type: "message", message: vote(cheat, "prevote", 1, 0, B) });
    expect(again.filter((a) => a.type === "evidence")).toEqual([]);
    // Two votes that agree are no evidence.
    const same = { ...evidence[0]!, voteB: evidence[0]!.voteA };
    expect(() => verifyEvidence(same, { chainId: CHAIN, validators: set, crypto: protocolCrypto })).toThrow(
      ConsensusError,
    );
  });

  it("ignores proposals from the wrong proposer, forged signatures and non-validators", () => {
    const set = setOf([1n, 1n, 1n, 1n]);
    const me = signerOf(set.proposer(3).address);
    const engine = engineFor(me);
    engine.handle({ type: "start", height: 1, validators: set });
    const wrong = signers.find((s) => hex(s.publicKey) !== set.proposer(0).address && s !== me)!;
    const payload = {
      v: 1,
      type: "proposal",
      chainId: CHAIN,
      height: 1,
      round: 0,
      polRound: -1,
      blockHash: sha256(A),
    } as const;
    const bad = {
      payload,
      signer: wrong.publicKey,
      signature: wrong.sign(protocolCrypto.signingBytes(payload)),
    };
    expect(
      engine.handle({ type: "message", message: { v: 1, type: "proposal", proposal: bad, block: A } }),
    ).toEqual([]);
    const forged = proposal(set, 1, 0, A);
    if (forged.type === "proposal") forged.proposal.signature = new Uint8Array(64);
    expect(engine.handle({ type: "message", message: forged })).toEqual([]);
    const outsider = keySigner(sha256(Uint8Array.of(99)));
    engine.handle({ type: "message", message: vote(outsider, "prevote", 1, 3, null) });
    engine.handle({ type: "message", message: vote(outsider, "precommit", 1, 3, null) });
    expect(engine.round).toBe(0);
  });
});

describe("verifyCommit", () => {
  const set = setOf([40n, 30n, 20n, 10n]);
  const blockHash = sha256(A);
  const sign = (i: number, hash = blockHash) => ({
    validator: signers[i]!.publicKey,
    signature: signers[i]!.sign(
      protocolCrypto.signingBytes(commitPrecommit(CHAIN, { height: 3, round: 1, blockHash: hash })),
    ),
  });
  const commit = (signatures: Commit["signatures"]): Commit => ({
    v: 1,
    height: 3,
    round: 1,
    blockHash,
    signatures,
  });
  const check = (c: Commit) =>
    verifyCommit(c, { chainId: CHAIN, validators: set, crypto: protocolCrypto, blockHash, height: 3 });
  const code = (c: Commit) => {
    try {
      check(c);
      return "ok";
    } catch (err) {
      return (err as ConsensusError).code;
    }
  };

  it("accepts more than 2/3 of the power and returns it", () => {
    expect(check(commit([sign(0), sign(1)]))).toBe(70n);
    expect(check(commit([sign(0), sign(2), sign(3)]))).toBe(70n);
  });

  it("refuses too little power, duplicates, bad signatures, strangers and another block", () => {
    expect(code(commit([sign(1), sign(2), sign(3)]))).toBe("INVALID_COMMIT");
    expect(code(commit([sign(0), sign(0), sign(3)]))).toBe("INVALID_COMMIT");
    expect(code(commit([sign(0), { ...sign(1), signature: new Uint8Array(64) }]))).toBe("INVALID_COMMIT");
    expect(code(commit([sign(0), sign(1), sign(4)]))).toBe("INVALID_COMMIT");
    expect(code(commit([sign(0), sign(1, sha256(B))]))).toBe("INVALID_COMMIT");
    expect(code({ ...commit([sign(0), sign(1)]), height: 4 })).toBe("INVALID_COMMIT");
  });
});

describe("the commit of a decided height", () => {
  const set = setOf([1n, 1n, 1n, 1n]);
  // A validator that proposes neither round 0 nor round 1.
  const me = signerOf(set.proposer(3).address);
  const others = signers.slice(0, 4).filter((s) => s !== me);
  const check = (commit: Commit, height = 1) =>
    verifyCommit(commit, {
      chainId: CHAIN,
      validators: set,
      crypto: protocolCrypto,
      blockHash: sha256(A),
      height,
    });
  const keys = (commit: Commit) => commit.signatures.map((s) => hex(s.validator));
  const sorted = (c: Commit) =>
    [...keys(c)].sort((a, b) => Buffer.compare(Buffer.from(a, "hex"), Buffer.from(b, "hex")));

  /** `me` decides A at height 1, round 0, on its own precommit and those of the first two others. */
  function decided() {
    const engine = engineFor(me);
    engine.handle({ type: "start", height: 1, validators: set });
    feed(engine, engine.handle({ type: "message", message: proposal(set, 1, 0, A) }));
    for (const s of others.slice(0, 2))
      engine.handle({ type: "message", message: vote(s, "prevote", 1, 0, A) });
    let decide: EngineAction<Value> | undefined;
    for (const s of others.slice(0, 2)) {
      const out = engine.handle({ type: "message", message: vote(s, "precommit", 1, 0, A) });
      decide ??= out.find((a) => a.type === "decide");
    }
    if (decide?.type !== "decide") throw new Error("no decision");
    return { engine, commit: decide.commit };
  }

  it("keeps collecting valid precommits for the decided block after the decision and into the next height", () => {
    const { engine, commit } = decided();
    expect(commit.signatures).toHaveLength(3);
    expect(check(commit)).toBe(3n);
    const late = others[2]!;
    // Nothing but the late validator's precommit for A in round 0 joins: not its nil, not another
    // block, not another round, not a prevote, not a forged signature, not a non-validator.
    const forged = vote(late, "precommit", 1, 0, A);
    if (forged.type === "vote") forged.vote.signature = new Uint8Array(64);
    const outsider = keySigner(sha256(Uint8Array.of(99)));
    for (const message of [
      vote(late, "precommit", 1, 0, null),
      vote(late, "precommit", 1, 0, B),
      vote(late, "precommit", 1, 1, A),
      vote(late, "prevote", 1, 0, A),
      forged,
      vote(outsider, "precommit", 1, 0, A),
    ]) {
      expect(engine.handle({ type: "message", message })).toEqual([]);
    }
    expect(engine.commitFor(1)!.signatures).toHaveLength(3);
    // The next height has started when the late precommit arrives: it still joins, sorted in.
    engine.handle({ type: "start", height: 2, validators: set.next() });
    expect(engine.handle({ type: "message", message: vote(late, "precommit", 1, 0, A) })).toEqual([]);
    const fuller = engine.commitFor(1)!;
    expect(fuller.signatures).toHaveLength(4);
    expect(keys(fuller)).toEqual(sorted(fuller));
    expect(check(fuller)).toBe(4n);
    expect({ ...fuller, signatures: [] }).toEqual({ ...commit, signatures: [] });
    // Counted once however often it arrives; other heights have no such commit.
    engine.handle({ type: "message", message: vote(late, "precommit", 1, 0, A) });
    expect(engine.commitFor(1)!.signatures).toHaveLength(4);
    expect(engine.commitFor(0)).toBeUndefined();
    expect(engine.commitFor(2)).toBeUndefined();
    // While height 2 runs, this node keeps gossiping its own precommit of height 1 for peers that missed it.
    const gossiped = engine
      .gossip()
      .flatMap((m) => (m.type === "vote" && m.vote.payload.height === 1 ? [m.vote.payload] : []));
    expect(gossiped).toMatchObject([{ type: "precommit", round: 0, blockHash: sha256(A) }]);
  });

  it("a validator that sees the quorum of precommits before it validated the block still signs its own", () => {
    const engine = engineFor(me);
    engine.handle({ type: "start", height: 1, validators: set });
    for (const s of others) engine.handle({ type: "message", message: vote(s, "prevote", 1, 0, A) });
    for (const s of others) engine.handle({ type: "message", message: vote(s, "precommit", 1, 0, A) });
    const asked = engine.handle({ type: "message", message: proposal(set, 1, 0, A) });
    const validate = asked.find((a) => a.type === "validateValue");
    if (validate?.type !== "validateValue") throw new Error("no validation asked");
    const out = engine.handle({ type: "validated", height: 1, valueHash: validate.valueHash, valid: true });
    // It never prevoted; it signs the precommit the polka justifies, then decides with it.
    expect(sent(out)).toMatchObject([{ type: "precommit", height: 1, round: 0, blockHash: sha256(A) }]);
    const decide = out.find((a) => a.type === "decide");
    if (decide?.type !== "decide") throw new Error("no decision");
    expect(decide.commit.signatures).toHaveLength(4);
    expect(keys(decide.commit)).toContain(hex(me.publicKey));
    expect(check(decide.commit)).toBe(4n);
  });

  it("signs nothing more when it already precommitted nil in that round, or saw no polka", () => {
    // Precommitted nil after its prevote timeout, then A is decided in that round: no second precommit.
    const engine = engineFor(me);
    engine.handle({ type: "start", height: 1, validators: set });
    feed(engine, engine.handle({ type: "message", message: proposal(set, 1, 0, A) }));
    engine.handle({ type: "message", message: vote(others[0]!, "prevote", 1, 0, A) });
    engine.handle({ type: "message", message: vote(others[1]!, "prevote", 1, 0, null) });
    expect(sent(engine.handle({ type: "timeout", kind: "prevote", height: 1, round: 0 }))).toMatchObject([
      { type: "precommit", round: 0, blockHash: null },
    ]);
    let out: EngineAction<Value>[] = [];
    for (const s of others)
      out.push(...engine.handle({ type: "message", message: vote(s, "precommit", 1, 0, A) }));
    expect(sent(out)).toEqual([]);
    const decide = out.find((a) => a.type === "decide");
    expect(decide?.type === "decide" && decide.commit.signatures.length).toBe(3);

    // Precommits without the prevotes that justify a precommit: it decides without signing.
    const unjustified = engineFor(me);
    unjustified.handle({ type: "start", height: 1, validators: set });
    for (const s of others) unjustified.handle({ type: "message", message: vote(s, "precommit", 1, 0, A) });
    out = feed(unjustified, unjustified.handle({ type: "message", message: proposal(set, 1, 0, A) }));
    expect(sent(out)).toEqual([]);
    expect(out.filter((a) => a.type === "decide")).toHaveLength(1);
  });
});
