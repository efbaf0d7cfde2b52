/**
 * The ledger as consensus sees it (LedgerChain), driven directly with real signatures and a real
 * LevelDB store: proposals, execution with the previous commit's signers, the atomic `put`, and a
 * reopened chain that replays its blocks to the same state and validator sets.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SignedTx, sign, signingBytes, type TxPayload } from "@deepshard/protocol";
import { afterEach, describe, expect, it } from "vitest";
import type { ProposalInfo } from "../src/consensus/app.ts";
import type { Block } from "../src/consensus/block.ts";
import type { Commit } from "../src/consensus/types.ts";
import { createGenesis } from "../src/genesis/genesis.ts";
import { LedgerChain, ledgerBlockHashing, txCode } from "../src/node/ledger-app.ts";
import { toHex } from "../src/state/hashing.ts";
import { LevelDb } from "../src/store/db.ts";
import { LedgerStore } from "../src/store/ledger-store.ts";
import { actor, type TestActor, type TxBody } from "./sim/harness.ts";

const CHAIN = "deepshard-app-1";
const validators = [0, 1, 2].map((i) => actor(`app-validator-${i}`));
const alice = actor("app-alice");
const bob = actor("app-bob");
const genesis = createGenesis({
  chainId: CHAIN,
  accounts: [alice, bob].map((a) => ({ address: a.publicKey, balance: 1_000_000n })),
  validators: validators.map((v, i) => ({ address: v.publicKey, bonded: BigInt(10_000 * (i + 1)) })),
  params: { maxValidators: 2 },
});
const ZERO = new Uint8Array(32);

function signed(from: TestActor, nonce: bigint, body: TxBody): SignedTx {
  const payload = { v: 1, chainId: CHAIN, nonce, fee: 2n, ...body } as TxPayload;
  return { payload, signer: from.publicKey, signature: sign(from.secretKey, signingBytes(payload)) };
}

function forged(): SignedTx {
  return {
    ...signed(bob, 1n, { type: "transfer", to: alice.publicKey, amount: 1n }),
    signature: new Uint8Array(64),
  };
}

/** A precommit commit for `block` signed by `signers`. */
function commitOf(block: Block<SignedTx>, signers: TestActor[]): Commit {
  const blockHash = ledgerBlockHashing.headerHash(block.header);
  const payload = {
    v: 1 as const,
    type: "precommit" as const,
    chainId: CHAIN,
    height: block.header.height,
    round: 0,
    blockHash,
  };
  const signatures = signers.map((s) => ({
    validator: s.publicKey,
    signature: sign(s.secretKey, signingBytes(payload)),
  }));
  return { v: 1, height: block.header.height, round: 0, blockHash, signatures };
}

function makeBlock(
  chain: LedgerChain,
  txs: SignedTx[],
  last?: { block: Block<SignedTx>; commit: Commit },
): Block<SignedTx> {
  const height = chain.height + 1;
  return {
    v: 1,
    header: {
      v: 1,
      chainId: CHAIN,
      height,
      time: genesis.genesisTime + 1_000 * height,
      prevHash: last ? ledgerBlockHashing.headerHash(last.block.header) : ZERO,
      txRoot: ledgerBlockHashing.txRoot(txs),
      appHash: chain.state.root,
      proposer: validators[2]!.publicKey,
      lastCommitHash: last ? ledgerBlockHashing.commitHash(last.commit) : ZERO,
    },
    txs,
    lastCommit: last?.commit ?? null,
  };
}

function info(block: Block<SignedTx>): ProposalInfo<SignedTx> {
  const h = block.header;
  const hash = ledgerBlockHashing.headerHash(h);
  return {
    height: h.height,
    hash,
    proposer: h.proposer,
    txs: block.txs,
    time: h.time,
    lastCommit: block.lastCommit,
  };
}

const open: LedgerStore[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function openChain(dir?: string): Promise<LedgerChain> {
  const path = dir ?? (await mkdtemp(join(tmpdir(), "ds-chain-")));
  if (!dir) dirs.push(path);
  const store = await LedgerStore.open(await LevelDb.open(path));
  open.push(store);
  return LedgerChain.open({ store, genesis });
}

describe("LedgerChain", () => {
  it("initChain reports the genesis root and validator set, and refuses another chain", async () => {
    const chain = await openChain();
    const res = await chain.initChain({ chainId: CHAIN, initialHeight: 1, validators: [] });
    expect(toHex(res.appHash)).toBe(toHex(chain.state.root));
    expect(res.validators?.map((v) => v.power)).toEqual([30_000n, 20_000n]);
    expect(await chain.info()).toEqual({ lastHeight: 0, lastAppHash: chain.state.root });
    await expect(chain.initChain({ chainId: "other", initialHeight: 1, validators: [] })).rejects.toThrow(
      /genesis is for deepshard-app-1/,
    );
  });

  it("prepareProposal keeps what succeeds in sequence; processProposal refuses forged signatures and repeats", async () => {
    const chain = await openChain();
    const good = signed(alice, 1n, { type: "transfer", to: bob.publicKey, amount: 5n });
    const tooMuch = signed(bob, 1n, { type: "transfer", to: alice.publicKey, amount: 10_000_000n });
    const next = signed(alice, 2n, { type: "bond", amount: 40_000n });
    const chosen = await chain.prepareProposal({
      height: 1,
      proposer: validators[2]!.publicKey,
      txs: [good, good, tooMuch, next],
      maxTxs: 10,
      misbehavior: [],
    });
    expect(chosen).toEqual([good, next]);
    expect(await chain.processProposal(info(makeBlock(chain, [good, next])))).toBe(true);
    expect(await chain.processProposal(info(makeBlock(chain, [good, forged()])))).toBe(false);
    expect(await chain.processProposal(info(makeBlock(chain, [good, good])))).toBe(false);
  });

  it("finalizeBlock counts the last commit's signers; put persists; a reopened chain replays to the same state", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ds-chain-"));
    dirs.push(dir);
    const chain = await openChain(dir);
    // A synced block (never processed) is checked here: a forged signature refuses the whole block.
    await expect(chain.finalizeBlock(info(makeBlock(chain, [forged()])))).rejects.toMatchObject({
      code: "STATE_BAD_BLOCK",
    });
    const b1 = makeBlock(chain, [
      signed(alice, 1n, { type: "transfer", to: bob.publicKey, amount: 5n }),
      signed(alice, 1n, { type: "transfer", to: bob.publicKey, amount: 6n }),
    ]);
    const r1 = await chain.finalizeBlock(info(b1));
    expect(r1.txResults).toEqual([{ code: 0 }, { code: txCode("TX_BAD_NONCE"), log: "TX_BAD_NONCE" }]);
    await chain.commit();
    const c1 = commitOf(b1, [validators[2]!]);
    // Only the block consensus finalized may be stored.
    await expect(chain.put({ block: makeBlock(chain, []), commit: c1 })).rejects.toMatchObject({
      code: "STATE_BAD_BLOCK",
    });
    await chain.put({ block: b1, commit: c1 });
    expect(chain.height).toBe(1);

    // Block 2 carries block 1's commit, which validator 1 did not sign: one missed block for it.
    // Alice bonds enough to enter the two-validator set and push validator 1, the smaller of the two, out.
    const b2 = makeBlock(chain, [signed(alice, 2n, { type: "bond", amount: 40_000n })], {
      block: b1,
      commit: c1,
    });
    expect(await chain.processProposal(info(b2))).toBe(true);
    const r2 = await chain.finalizeBlock(info(b2));
    expect(r2.txResults).toEqual([{ code: 0 }]);
    expect(r2.validatorUpdates.map((u) => [toHex(u.publicKey), u.power])).toEqual([
      [validators[1]!.address, 0n],
      [alice.address, 40_000n],
    ]);
    await chain.commit();
    const c2 = commitOf(b2, [validators[2]!, validators[1]!]);
    await chain.put({ block: b2, commit: c2 });
    expect(toHex(r2.appHash)).toBe(toHex(chain.state.root));
    const missed = (c: LedgerChain, v: TestActor) => c.state.tables.validators.get(v.address)!.missed;
    expect([missed(chain, validators[1]!), missed(chain, validators[2]!)]).toEqual([1, 0]);
    expect(toHex(ledgerBlockHashing.headerHash((await chain.get(2))!.block.header))).toBe(
      toHex(info(b2).hash),
    );
    await open.splice(0)[0]!.close();

    const reopened = await openChain(dir);
    expect(await reopened.info()).toEqual({ lastHeight: 2, lastAppHash: r2.appHash });
    expect(missed(reopened, validators[1]!)).toBe(1);
    const resume = await reopened.resume(2);
    expect([alice, ...validators].map((v) => resume.validators.powerOf(v.address))).toEqual([
      40_000n,
      0n,
      0n,
      30_000n,
    ]);
    expect([alice, ...validators].map((v) => resume.lastValidators.powerOf(v.address))).toEqual([
      0n,
      0n,
      20_000n,
      30_000n,
    ]);
    const stored = (await reopened.get(2))!;
    expect(toHex(stored.commit.blockHash)).toBe(toHex(c2.blockHash));
    await expect(reopened.resume(1)).rejects.toMatchObject({ code: "STATE_BAD_BLOCK" });
  });
});
