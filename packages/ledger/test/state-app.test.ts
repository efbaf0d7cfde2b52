/** The state machine behind consensus's ABCI-shaped interface, with real signatures and a LevelDB store. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SignedTx, sha256Parts, sign, signingBytes, type TxPayload } from "@deepshard/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { createGenesis, genesisState } from "../src/genesis/genesis.ts";
import { LedgerApp, txCode } from "../src/state/app.ts";
import { toHex } from "../src/state/hashing.ts";
import { LevelDb } from "../src/store/db.ts";
import { LedgerStore } from "../src/store/ledger-store.ts";
import { actor, type TestActor, type TxBody } from "./sim/harness.ts";

const CHAIN = "deepshard-app-1";
const validators = [0, 1, 2].map((i) => actor(`app-validator-${i}`));
const alice = actor("app-alice");
const bob = actor("app-bob");
const genesis = genesisState(
  createGenesis({
    chainId: CHAIN,
    accounts: [alice, bob].map((a) => ({ address: a.publicKey, balance: 1_000_000n })),
    validators: validators.map((v, i) => ({ address: v.publicKey, bonded: BigInt(10_000 * (i + 1)) })),
    params: { maxValidators: 2 },
  }),
);

function signed(from: TestActor, nonce: bigint, body: TxBody): SignedTx {
  const payload = { v: 1, chainId: CHAIN, nonce, fee: 2n, ...body } as TxPayload;
  return { payload, signer: from.publicKey, signature: sign(from.secretKey, signingBytes(payload)) };
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function proposal(height: number, txs: SignedTx[]) {
  return {
    height,
    hash: sha256Parts([new TextEncoder().encode(`app-block-${height}`)]),
    proposer: validators[0]!.publicKey,
    txs,
    time: 1_000 * height,
    lastCommitSigners: height === 1 ? null : validators.map((v) => v.publicKey),
  };
}

describe("LedgerApp", () => {
  it("initChain reports the genesis root and validator set", async () => {
    const app = new LedgerApp({ state: genesis });
    const res = await app.initChain({ chainId: CHAIN, initialHeight: 1, validators: [] });
    expect(toHex(res.appHash)).toBe(toHex(genesis.root));
    expect(res.validators?.map((v) => v.power)).toEqual([30_000n, 20_000n]);
    await expect(app.initChain({ chainId: "other", initialHeight: 1, validators: [] })).rejects.toThrow();
  });

  it("prepareProposal keeps what succeeds; processProposal refuses forged signatures", async () => {
    const app = new LedgerApp({ state: genesis });
    const good = signed(alice, 1n, { type: "transfer", to: bob.publicKey, amount: 5n });
    const replay = good;
    const tooMuch = signed(bob, 1n, { type: "transfer", to: alice.publicKey, amount: 10_000_000n });
    const forged = {
      ...signed(bob, 1n, { type: "transfer", to: alice.publicKey, amount: 1n }),
      signature: new Uint8Array(64),
    };
    const next = signed(alice, 2n, { type: "bond", amount: 40_000n });
    const chosen = await app.prepareProposal({
      height: 1,
      proposer: validators[0]!.publicKey,
      txs: [good, replay, tooMuch, forged, next],
      maxTxs: 10,
      misbehavior: [],
    });
    expect(chosen).toEqual([good, next]);
    expect(await app.processProposal(proposal(1, [good, next]))).toBe(true);
    expect(await app.processProposal(proposal(1, [good, forged]))).toBe(false);
  });

  it("finalizeBlock + commit persist to LevelDB; a restarted app resumes and the log replays", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ds-app-"));
    dirs.push(dir);
    let store = await LedgerStore.open(await LevelDb.open(dir));
    await store.init(genesis);
    const app = new LedgerApp({ state: await store.loadState(), store });
    const forged = {
      ...signed(bob, 1n, { type: "transfer", to: alice.publicKey, amount: 1n }),
      signature: new Uint8Array(64),
    };
    const r1 = await app.finalizeBlock(
      proposal(1, [
        signed(alice, 1n, { type: "transfer", to: bob.publicKey, amount: 5n }),
        forged,
        signed(alice, 1n, { type: "transfer", to: bob.publicKey, amount: 5n }),
      ]),
    );
    expect(r1.txResults.map((r) => r.code)).toEqual([0, txCode("TX_BAD_SIGNATURE"), txCode("TX_BAD_NONCE")]);
    await app.commit();
    // Alice bonds enough to enter the two-validator set and push the smallest one out.
    const r2 = await app.finalizeBlock(proposal(2, [signed(alice, 2n, { type: "bond", amount: 40_000n })]));
    expect(r2.txResults).toEqual([{ code: 0, log: "" }]);
    expect(r2.validatorUpdates.map((u) => [toHex(u.publicKey), u.power])).toEqual([
      [alice.address, 40_000n],
      [validators[1]!.address, 0n],
    ]);
    await app.commit();
    expect(toHex(r2.appHash)).toBe(toHex(app.current.root));
    await store.close();

    store = await LedgerStore.open(await LevelDb.open(dir));
    const restarted = new LedgerApp({ state: await store.loadState(), store });
    expect(await restarted.info()).toEqual({ lastHeight: 2, lastAppHash: r2.appHash });
    const replayed = await store.replay(genesis, (s, b) => restarted.replayBlock(s, b));
    expect(toHex(replayed.root)).toBe(toHex(r2.appHash));
    await store.close();
  });
});
