import {
  type KeyPair,
  keyPairFromSecret,
  type SignedTx,
  sha256,
  sign,
  signingBytes,
  type TxPayload,
} from "@deepshard/protocol";
import { describe, expect, it } from "vitest";
import { createGenesis, genesisState } from "../src/genesis/index.ts";
import {
  ledgerMempoolApp,
  Mempool,
  MempoolError,
  type MempoolLimits,
  txFromBytes,
  txInfo,
  txSigningBytes,
} from "../src/mempool/index.ts";
import { StateMachine } from "../src/state/machine.ts";
import type { LedgerState } from "../src/state/tables.ts";

const CHAIN = "mempool-test";
const key = (i: number): KeyPair => keyPairFromSecret(sha256(Uint8Array.of(i, 42)));
const alice = key(1);
const bob = key(2);
const carol = key(3);
const validator = key(9);

function transfer(from: KeyPair, nonce: bigint, amount = 10n, fee = 1n): SignedTx {
  const payload: TxPayload = {
    v: 1,
    type: "transfer",
    chainId: CHAIN,
    nonce,
    fee,
    to: bob.publicKey,
    amount,
  };
  return { payload, signer: from.publicKey, signature: sign(from.secretKey, signingBytes(payload)) };
}

function setup(balances: { alice?: bigint; carol?: bigint } = {}, limits: Partial<MempoolLimits> = {}) {
  const genesis = createGenesis({
    chainId: CHAIN,
    accounts: [
      { address: alice.publicKey, balance: balances.alice ?? 1_000n },
      { address: carol.publicKey, balance: balances.carol ?? 1_000n },
    ],
    validators: [{ address: validator.publicKey, bonded: 10_000n }],
  });
  const chain = { state: genesisState(genesis) as LedgerState, height: 0 };
  const machine = new StateMachine();
  const pool = new Mempool({ app: ledgerMempoolApp(() => chain.state, machine), limits });
  /** Commits `txs` as the next block, as a node would, then tells the pool. */
  const commit = (txs: SignedTx[]) => {
    chain.height++;
    const result = machine.applyBlock(chain.state, {
      height: chain.height,
      time: chain.height * 1000,
      hash: sha256(Uint8Array.of(chain.height)),
      proposer: validator.publicKey,
      lastCommitSigners: chain.height === 1 ? null : [validator.publicKey],
      txs: txs.map((tx) => ({ tx })),
    });
    chain.state = result.state;
    pool.update(chain.height, txs);
    return result.txResults;
  };
  return { pool, commit, chain };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof MempoolError) return err.code;
    throw err;
  }
  return "accepted";
}

describe("mempool", () => {
  it("verifies each signature once, refuses forged ones and duplicates", () => {
    const { pool } = setup();
    const tx = transfer(alice, 1n);
    expect(pool.add(tx)).toBe("added");
    expect(pool.add(tx)).toBe("known");
    // A decoded copy of the same bytes is a different object: still known, still not re-verified.
    expect(pool.add(structuredClone(tx))).toBe("known");
    expect(pool.signatures.verified).toBe(1);
    const forged = { ...transfer(alice, 2n), signature: transfer(alice, 3n).signature };
    expect(refusal(() => pool.add(forged))).toBe("TX_BAD_SIGNATURE");
    expect(pool.size).toBe(1);
  });

  it("orders each sender by nonce and holds gaps until they fill", () => {
    const { pool } = setup();
    const a3 = transfer(alice, 3n);
    const a2 = transfer(alice, 2n);
    const c1 = transfer(carol, 1n);
    const a1 = transfer(alice, 1n);
    expect(pool.add(a3)).toBe("held");
    expect(pool.add(a2)).toBe("held");
    expect(pool.add(c1)).toBe("added");
    expect(pool.reap(10)).toEqual([c1]);
    expect(pool.add(a1)).toBe("added");
    expect(pool.readyCount).toBe(4);
    // Arrival order, but alice's nonces in sequence once her first one is reachable.
    expect(pool.reap(10)).toEqual([c1, a1, a2, a3]);
    expect(pool.reap(2)).toEqual([c1, a1]);
    // Reaping proposes; only a committed block removes.
    expect(pool.size).toBe(4);
  });

  it("reaps within a byte limit", () => {
    const { pool } = setup();
    const txs = [1n, 2n, 3n].map((n) => transfer(alice, n));
    for (const tx of txs) pool.add(tx);
    const one = pool.sizeBytes / 3;
    expect(pool.reap(10, one * 2 + 1)).toEqual(txs.slice(0, 2));
    expect(pool.reap(10, one - 1)).toEqual([]);
  });

  it("refuses committed and replayed transactions and drops what a block included", () => {
    const { pool, commit } = setup();
    const a1 = transfer(alice, 1n);
    const a2 = transfer(alice, 2n);
    pool.add(a1);
    pool.add(a2);
    const results = commit([a1]);
    expect(results[0]!.code).toBe("OK");
    expect(pool.has(a1)).toBe(false);
    expect(pool.has(a2)).toBe(true);
    expect(refusal(() => pool.add(a1))).toBe("TX_COMMITTED");
    // Same nonce, different transaction: the nonce is used.
    expect(refusal(() => pool.add(transfer(alice, 1n, 11n)))).toBe("TX_COMMITTED");
    expect(pool.reap(10)).toEqual([a2]);
  });

  it("re-checks after a block: what became invalid leaves, later nonces wait again", () => {
    const { pool, commit } = setup({ alice: 100n });
    const pooled = [1n, 2n, 3n].map((n) => transfer(alice, n, 20n));
    for (const tx of pooled) expect(pool.add(tx)).toBe("added");
    // Another transaction of alice (from another node) spends most of her balance at nonce 1.
    commit([transfer(alice, 1n, 90n)]);
    expect(pool.has(pooled[0]!)).toBe(false);
    // Nonce 2 can no longer be paid: dropped; nonce 3 waits for a new nonce 2.
    expect(pool.has(pooled[1]!)).toBe(false);
    expect(pool.has(pooled[2]!)).toBe(true);
    expect(pool.reap(10)).toEqual([]);
    expect(pool.add(transfer(alice, 2n, 1n, 1n))).toBe("added");
    expect(pool.readyCount).toBe(1);
  });

  it("refuses what the sender cannot pay, counting the transactions pooled before", () => {
    const { pool } = setup({ alice: 50n });
    expect(pool.add(transfer(alice, 1n, 20n))).toBe("added");
    expect(pool.add(transfer(alice, 2n, 20n))).toBe("added");
    expect(refusal(() => pool.add(transfer(alice, 3n, 20n)))).toBe("TX_REFUSED");
    expect(pool.add(transfer(alice, 3n, 5n))).toBe("added");
    // Wrong chain: the application's stateless check.
    const payload: TxPayload = {
      v: 1,
      type: "transfer",
      chainId: "other-chain",
      nonce: 1n,
      fee: 1n,
      to: bob.publicKey,
      amount: 1n,
    };
    const wrong = {
      payload,
      signer: carol.publicKey,
      signature: sign(carol.secretKey, signingBytes(payload)),
    };
    expect(refusal(() => pool.add(wrong))).toBe("TX_REFUSED");
  });

  it("bounds held nonces, each sender and the whole pool", () => {
    const { pool } = setup({}, { maxNonceAhead: 4, maxTxsPerSender: 3, maxTxs: 4 });
    expect(refusal(() => pool.add(transfer(alice, 5n)))).toBe("TX_NONCE_TOO_FAR");
    expect(pool.add(transfer(alice, 4n))).toBe("held");
    pool.add(transfer(alice, 1n));
    pool.add(transfer(alice, 2n));
    expect(refusal(() => pool.add(transfer(alice, 3n)))).toBe("SENDER_FULL");
    pool.add(transfer(carol, 1n));
    expect(refusal(() => pool.add(transfer(carol, 2n)))).toBe("MEMPOOL_FULL");
    expect(pool.size).toBe(4);
    const bytes = setup({}, { maxBytes: 10 });
    expect(refusal(() => bytes.pool.add(transfer(alice, 1n)))).toBe("MEMPOOL_FULL");
    const sender = setup({}, { maxBytesPerSender: 10 });
    expect(refusal(() => sender.pool.add(transfer(alice, 1n)))).toBe("SENDER_FULL");
  });

  it("a pool kept through many blocks stays consistent with the chain", () => {
    const { pool, commit, chain } = setup({ alice: 10_000n, carol: 10_000n });
    let nonce = { alice: 0n, carol: 0n };
    for (let block = 0; block < 20; block++) {
      // Out of order within each burst; the pool puts them back in nonce order.
      const burst = [
        transfer(alice, nonce.alice + 2n),
        transfer(carol, nonce.carol + 1n),
        transfer(alice, nonce.alice + 1n),
      ];
      for (const tx of burst) pool.add(tx);
      nonce = { alice: nonce.alice + 2n, carol: nonce.carol + 1n };
      const reaped = pool.reap(2 + (block % 3));
      const results = commit(reaped);
      expect(results.every((r) => r.code === "OK")).toBe(true);
    }
    const rest = pool.reap(1000);
    expect(commit(rest).every((r) => r.code === "OK")).toBe(true);
    expect(pool.size).toBe(0);
    expect(chain.state.tables.accounts.get(Buffer.from(alice.publicKey).toString("hex"))!.nonce).toBe(40n);
  });

  it("takes signing bytes out of a transaction's canonical bytes, equal to signingBytes", () => {
    const common = { v: 1 as const, chainId: CHAIN, nonce: 7n, fee: 3n };
    const payloads: TxPayload[] = [
      { ...common, type: "transfer", to: bob.publicKey, amount: 5n },
      { ...common, type: "bond", amount: 1_000n },
      { ...common, type: "data.submit", contentHash: sha256(Uint8Array.of(1)), size: 10, stake: 10n },
      {
        ...common,
        type: "data.submit",
        contentHash: sha256(Uint8Array.of(2)),
        size: 10,
        stake: 10n,
        metadata: "x".repeat(300),
      },
      { ...common, type: "weights.buy", weightsId: sha256(Uint8Array.of(3)), maxPrice: 2n ** 63n },
      {
        ...common,
        type: "training.verdict",
        round: 4,
        verdicts: [{ trainer: bob.publicKey, accept: false, reasons: ["copy"] }],
      },
    ];
    for (const payload of payloads) {
      const tx = {
        payload,
        signer: alice.publicKey,
        signature: sign(alice.secretKey, signingBytes(payload)),
      };
      expect(txSigningBytes(tx)).toEqual(signingBytes(payload));
      // The same from a transaction decoded from bytes (what gossip and proposals carry).
      const decoded = txFromBytes(txInfo(tx).bytes);
      expect(txSigningBytes(decoded)).toEqual(signingBytes(payload));
      expect(txInfo(decoded).id).toBe(txInfo(tx).id);
    }
  });

  it("lists pooled transactions to its listeners and finds them by id", () => {
    const { pool } = setup();
    const seen: SignedTx[] = [];
    const off = pool.onAdd((tx) => seen.push(tx));
    const tx = transfer(alice, 1n);
    pool.add(tx);
    off();
    pool.add(transfer(alice, 2n));
    expect(seen).toEqual([tx]);
    expect(pool.get(txInfo(tx).hash)).toBe(tx);
    expect(pool.getById(txInfo(tx).id)).toBe(tx);
    expect(pool.nextNonce(alice.publicKey)).toBe(3n);
  });
});
