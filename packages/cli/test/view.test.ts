/**
 * The live view's reducer (events, block transactions and API snapshots → one state) and its ink
 * rendering of a state, without a network.
 */
import { encodeAddress, generateKeyPair } from "@deepshard/protocol";
import { renderToString } from "ink";
import { createElement } from "react";
import { describe, expect, it } from "vitest";
import type { BlockTx, NodeStatus } from "../src/node/client.ts";
import {
  initialState,
  MAX_LOG,
  MAX_SUBMISSIONS,
  NetworkView,
  reduce,
  toAddress,
  type ViewAction,
  type ViewNode,
  type ViewState,
  ViewStore,
} from "../src/view/index.ts";

const keys = Array.from({ length: 4 }, () => generateKeyPair());
const addr = (i: number) => encodeAddress(keys[i]!.publicKey);
const hexKey = (i: number) => Buffer.from(keys[i]!.publicKey).toString("hex");
const nodes: ViewNode[] = [0, 1, 2].map((i) => ({
  name: `node-${i}`,
  api: `http://127.0.0.1:${1000 + i}`,
  roles: i === 0 ? ["validator", "storage"] : ["informant", "trainer"],
  address: addr(i),
}));
const SUB = "ab".repeat(32);
const SUPPLY = {
  height: 1,
  genesis: 5n,
  minted: 0n,
  burned: 0n,
  balances: 5n,
  bonded: 0n,
  unbonding: 0n,
  escrowed: 0n,
  expected: 5n,
  actual: 5n,
  holds: true,
};
const WEIGHTS = "cd".repeat(32);

function run(actions: ViewAction[], from: ViewState = initialState("test", nodes)): ViewState {
  return actions.reduce(reduce, from);
}

function tx(type: string, sender: number, fields: Record<string, unknown>, code = 0): BlockTx {
  return {
    hash: SUB,
    index: 0,
    code,
    ok: code === 0,
    log: "",
    type,
    sender: addr(sender),
    nonce: "1",
    fee: "1",
    ...fields,
  };
}

const status = (height: number, price: bigint): NodeStatus => ({
  chainId: "devnet",
  version: "0.1.0",
  address: addr(0),
  peerId: "12D3",
  roles: ["validator"],
  height,
  appHash: "00".repeat(32),
  lastBlockHash: "11".repeat(32),
  time: 1_000,
  consensus: { height: height + 1, round: 0, step: "propose" },
  peers: 2,
  listen: [],
  mempool: { txs: 3, bytes: 100 },
  validators: 1,
  minFee: 1n,
  price,
  canonicalWeightsId: WEIGHTS,
});

describe("the view's reducer", () => {
  it("follows the height from blocks and status, never backwards", () => {
    const s = run([
      {
        type: "event",
        node: "node-0",
        event: { type: "block", height: 5, hash: "h", time: 9, appHash: "aa", proposer: addr(0), txs: 0 },
      },
      {
        type: "event",
        node: "node-0",
        event: { type: "block", height: 4, hash: "h", time: 8, appHash: "bb", proposer: addr(0), txs: 0 },
      },
      { type: "status", node: "node-0", status: status(3, 250n) },
    ]);
    expect(s.height).toBe(5);
    expect(s.appHash).toBe("aa");
    expect(s.price).toBe(250n);
    expect(s.consensus).toEqual({ height: 4, round: 0, step: "propose" });
    expect(s.chainId).toBe("devnet");
    expect(s.mempool).toBe(3);
  });

  it("opens a submission from its transaction, adds votes once per validator, closes it on the outcome", () => {
    let s = run([
      {
        type: "block",
        height: 7,
        txs: [tx("data.submit", 1, { contentHash: "ee".repeat(32), size: 403, stake: "100" })],
      },
      {
        type: "block",
        height: 8,
        txs: [{ ...tx("data.vote", 0, { submission: SUB }), hash: "01".repeat(32) }],
      },
      {
        type: "event",
        node: "node-0",
        event: {
          type: "validator.vote",
          submission: SUB,
          informant: hexKey(1),
          height: 8,
          combined: 6_500,
          verdict: "scored",
        },
      },
    ]);
    expect(s.submissions).toHaveLength(1);
    expect(s.submissions[0]).toMatchObject({
      id: SUB,
      informant: addr(1),
      size: 403,
      stake: 100n,
      status: "open",
      height: 7,
    });
    expect(s.submissions[0]!.votes).toEqual([
      { voter: addr(0), height: 8, combined: 6_500, verdict: "scored" },
    ]);
    s = reduce(s, {
      type: "event",
      node: "node-1",
      event: {
        type: "informant.outcome",
        submission: SUB,
        status: "accepted",
        value: 6_500,
        threshold: 5_000,
        reward: "650",
      },
    });
    expect(s.submissions[0]).toMatchObject({
      status: "accepted",
      value: 6_500,
      threshold: 5_000,
      reward: 650n,
    });
    expect(s.log.at(-1)).toContain("accepted");
  });

  it("ignores failed transactions", () => {
    const s = run([{ type: "block", height: 3, txs: [tx("data.submit", 1, { size: 1, stake: "10" }, 7)] }]);
    expect(s.submissions).toEqual([]);
    expect(s.height).toBe(3);
  });

  it("a vote heard before its submission's transaction still lands on one row", () => {
    const s = run([
      {
        type: "event",
        node: "node-0",
        event: { type: "validator.vote", submission: SUB, informant: hexKey(1), height: 8, combined: 100 },
      },
      { type: "block", height: 7, txs: [tx("data.submit", 1, { size: 9, stake: "10" })] },
      {
        type: "block",
        height: 8,
        txs: [{ ...tx("data.vote", 0, { submission: SUB }), hash: "02".repeat(32) }],
      },
    ]);
    expect(s.submissions).toHaveLength(1);
    expect(s.submissions[0]!.votes).toHaveLength(1);
    expect(s.submissions[0]).toMatchObject({ informant: addr(1), size: 9, height: 7 });
  });

  it("marks submissions closed once their window passed without a known outcome", () => {
    const s = run([
      { type: "open-submissions", open: [{ submission: SUB, informant: hexKey(3), size: 50, closesAt: 10 }] },
      { type: "status", node: "node-0", status: status(10, 1n) },
    ]);
    expect(s.submissions[0]).toMatchObject({ status: "open", informant: addr(3), closesAt: 10 });
    expect(reduce(s, { type: "status", node: "node-0", status: status(11, 1n) }).submissions[0]!.status).toBe(
      "closed",
    );
  });

  it("keeps at most MAX_SUBMISSIONS rows, dropping closed ones first", () => {
    const actions: ViewAction[] = [];
    for (let i = 0; i < MAX_SUBMISSIONS + 5; i++) {
      const id = i.toString(16).padStart(64, "0");
      actions.push({
        type: "block",
        height: i + 1,
        txs: [{ ...tx("data.submit", 1, { size: 1, stake: "1" }), hash: id }],
      });
      if (i < 10)
        actions.push({
          type: "event",
          node: "node-1",
          event: { type: "informant.outcome", submission: id, status: "rejected" },
        });
    }
    const s = run(actions);
    expect(s.submissions).toHaveLength(MAX_SUBMISSIONS);
    expect(s.submissions.filter((x) => x.status === "rejected")).toHaveLength(5);
  });

  it("builds a round from commits, reveals, verdicts and the trainers' outcomes", () => {
    const s = run([
      { type: "round", round: { id: 2, phase: "commit", commitEnd: 10, revealEnd: 15, verdictEnd: 20 } },
      {
        type: "block",
        height: 9,
        txs: [
          tx("training.commit", 1, { round: 2, commitment: "aa" }),
          tx("training.commit", 2, { round: 2 }),
        ],
      },
      {
        type: "block",
        height: 12,
        txs: [tx("training.reveal", 1, { round: 2, weightsId: WEIGHTS, salt: "bb" })],
      },
      {
        type: "block",
        height: 17,
        txs: [
          tx("training.verdict", 0, {
            round: 2,
            verdicts: [
              { trainer: hexKey(1), accept: true, reasons: [] },
              { trainer: hexKey(2), accept: false, reasons: ["weights_unavailable"] },
            ],
          }),
        ],
      },
      {
        type: "event",
        node: "node-1",
        event: { type: "trainer.outcome", round: 2, outcome: "rewarded", canonical: true },
      },
      {
        type: "event",
        node: "node-2",
        event: { type: "trainer.outcome", round: 2, outcome: "slashed", canonical: false },
      },
      { type: "round", round: { id: 2, phase: "done", commitEnd: 10, revealEnd: 15, verdictEnd: 20 } },
    ]);
    expect(s.rounds).toHaveLength(1);
    const r = s.rounds[0]!;
    expect(r).toMatchObject({ id: 2, phase: "done", verdictEnd: 20 });
    expect(r.trainers).toEqual([
      { trainer: addr(1), committed: true, weightsId: WEIGHTS, outcome: "rewarded", canonical: true },
      { trainer: addr(2), committed: true, outcome: "slashed", canonical: false },
    ]);
    expect(
      reduce(s, {
        type: "event",
        node: "node-1",
        event: { type: "trainer.trained", round: 5, weightsId: WEIGHTS },
      }).rounds[1]!.trainers,
    ).toEqual([{ trainer: addr(1), committed: false, trained: WEIGHTS }]);
    expect(r.verdicts).toEqual([
      { validator: addr(0), accepts: 1, rejects: 1, reasons: ["weights_unavailable"] },
    ]);
  });

  it("takes validators, balances, supply, weights and replication from snapshots", () => {
    const s = run([
      {
        type: "validators",
        set: { height: 3, totalPower: 300n, validators: [{ address: addr(0), power: 300n }] },
      },
      {
        type: "account",
        account: {
          address: addr(1),
          balance: 42n,
          nonce: 1n,
          nextNonce: 2n,
          bonded: 0n,
          unbonding: 0n,
          validator: null,
        },
      },
      {
        type: "account",
        account: {
          address: addr(3),
          balance: 7n,
          nonce: 0n,
          nextNonce: 1n,
          bonded: 5n,
          unbonding: 0n,
          validator: null,
        },
      },
      {
        type: "supply",
        supply: {
          height: 3,
          genesis: 1n,
          minted: 0n,
          burned: 0n,
          balances: 1n,
          bonded: 0n,
          unbonding: 0n,
          escrowed: 0n,
          expected: 1n,
          actual: 1n,
          holds: true,
        },
      },
      {
        type: "weights",
        overview: {
          height: 3,
          canonicalWeightsId: WEIGHTS,
          price: "1200",
          accumulatedValue: "50",
          history: [{}, {}],
        },
      },
      {
        type: "replication",
        view: {
          weightsId: WEIGHTS,
          chunkCount: 9,
          holders: [{ address: addr(0), chunks: 9, roles: ["storage"] }],
          replication: { target: 2, min: 1, underReplicated: 9, missing: 0, placed: 0, storageSet: ["p"] },
        },
      },
    ]);
    expect(s.validators).toEqual([{ address: addr(0), power: 300n }]);
    expect(s.totalPower).toBe(300n);
    expect(s.accounts.find((a) => a.address === addr(1))!.balance).toBe(42n);
    expect(s.accounts.find((a) => a.address === addr(3))).toMatchObject({ balance: 7n, bonded: 5n });
    expect(s.supply).toEqual({ holds: true, actual: 1n });
    expect(s).toMatchObject({
      price: 1200n,
      accumulatedValue: 50n,
      weightsVersions: 2,
      canonicalWeightsId: WEIGHTS,
    });
    expect(s.replication?.replication?.underReplicated).toBe(9);
  });

  it("keeps one error per node until the node answers again, and a bounded log", () => {
    let s = run([
      { type: "error", node: "node-0", message: "cannot reach" },
      { type: "error", node: "node-1", message: "HTTP 500" },
    ]);
    expect(Object.keys(s.errors)).toEqual(["node-0", "node-1"]);
    expect(reduce(s, { type: "error", node: "node-0", message: "cannot reach" })).toBe(s);
    s = reduce(s, { type: "status", node: "node-0", status: status(1, 1n) });
    expect(s.errors).toEqual({ "node-1": "HTTP 500" });
    for (let i = 0; i < MAX_LOG + 10; i++) s = reduce(s, { type: "log", line: `line ${i}` });
    expect(s.log).toHaveLength(MAX_LOG);
    expect(s.log.at(-1)).toBe(`line ${MAX_LOG + 9}`);
  });

  it("turns hex keys into addresses and leaves addresses alone", () => {
    expect(toAddress(hexKey(2))).toBe(addr(2));
    expect(toAddress(addr(2))).toBe(addr(2));
  });
});

describe("the store", () => {
  it("tells listeners once per burst of actions", async () => {
    const store = new ViewStore("t", nodes, { notifyMs: 20 });
    let told = 0;
    store.subscribe(() => told++);
    for (let h = 1; h <= 10; h++) store.dispatch({ type: "status", node: "node-0", status: status(h, 1n) });
    expect(told).toBe(0);
    await new Promise((r) => setTimeout(r, 60));
    expect(told).toBe(1);
    expect(store.getState().height).toBe(10);
    store.close();
  });
});

describe("the rendering", () => {
  it("shows the height, validators, a submission with its votes, a round, balances and the price", () => {
    const s = run([
      { type: "status", node: "node-0", status: status(42, 1_234n) },
      {
        type: "validators",
        set: { height: 42, totalPower: 200n, validators: [{ address: addr(0), power: 200n }] },
      },
      {
        type: "account",
        account: {
          address: addr(1),
          balance: 999_000n,
          nonce: 1n,
          nextNonce: 2n,
          bonded: 0n,
          unbonding: 0n,
          validator: null,
        },
      },
      { type: "block", height: 40, txs: [tx("data.submit", 1, { size: 403, stake: "100" })] },
      {
        type: "event",
        node: "node-0",
        event: { type: "validator.vote", submission: SUB, informant: hexKey(1), height: 41, combined: 6_500 },
      },
      {
        type: "event",
        node: "node-2",
        event: { type: "trainer.outcome", round: 3, outcome: "slashed", canonical: false },
      },
      { type: "supply", supply: { ...SUPPLY, holds: false } },
    ]);
    const frame = renderToString(createElement(NetworkView, { state: s }), { columns: 160 });
    expect(frame).toContain("height 42");
    expect(frame).toContain("price 1,234");
    expect(frame).toContain("supply 5 ✗ MISMATCH");
    expect(frame).toMatch(/Validators 1/);
    expect(frame).toMatch(/node-0\s+200\s+100\.0%/);
    expect(frame).toMatch(/node-1\s+999,000/);
    expect(frame).toContain("abababab…");
    expect(frame).toContain("1 votes: node-0 65%");
    expect(frame).toContain("round 3");
    expect(frame).toMatch(/node-2\s+training\s+slashed/);
  });
});
