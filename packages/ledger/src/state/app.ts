/**
 * The state machine behind consensus's ABCI-shaped interface (consensus/app.ts): transactions
 * are the protocol's signed envelopes; each signature is verified once (cached by tx hash), the
 * block is executed by the state machine, and `commit` persists it as one batch when a store is
 * given. `info` tells consensus where the application stands after a restart.
 */
import { decodeTx, encodeTx, type SignedTx, signingBytes, txHash, verify } from "@deepshard/protocol";
import type {
  AppInfo,
  ConsensusApp,
  FinalizeBlockResponse,
  InitChainRequest,
  InitChainResponse,
  PrepareProposalRequest,
  ProposalInfo,
} from "../consensus/app.ts";
import type { ValidatorUpdate } from "../consensus/validators.ts";
import type { LedgerStore, StoredBlock } from "../store/ledger-store.ts";
import { decodeEntry, encodeEntry } from "./codec.ts";
import type { TxErrorCode } from "./errors.ts";
import { fromHex, toHex } from "./hashing.ts";
import { type BlockInput, type BlockResult, StateMachine, type TxInput, type TxOutcome } from "./machine.ts";
import type { LedgerState } from "./tables.ts";
import type { ValidatorPower } from "./types.ts";

/** Numeric result codes of finalizeBlock (0 is success), one per TxErrorCode. */
export const TX_CODES: readonly TxErrorCode[] = [
  "TX_MALFORMED",
  "TX_BAD_SIGNATURE",
  "TX_WRONG_CHAIN",
  "TX_BAD_NONCE",
  "TX_FEE_TOO_LOW",
  "TX_INSUFFICIENT_FUNDS",
  "TX_NOT_VALIDATOR",
  "TX_DUPLICATE",
  "TX_UNKNOWN_TARGET",
  "TX_WRONG_PHASE",
  "TX_COMMITMENT_MISMATCH",
  "TX_TOMBSTONED",
  "TX_PRICE_ABOVE_MAX",
  "TX_LIMIT",
  "TX_INVALID_EVIDENCE",
];

export function txCode(code: "OK" | TxErrorCode): number {
  return code === "OK" ? 0 : TX_CODES.indexOf(code) + 1;
}

/** consensus's proposal info, plus who signed the previous block's commit when the engine passes it. */
export type LedgerProposal = ProposalInfo<SignedTx> & { lastCommitSigners?: readonly Uint8Array[] | null };

/** What the store keeps per block: enough to re-execute it. */
interface StoredBlockRecord {
  height: number;
  time: number;
  hash: Uint8Array;
  proposer: Uint8Array;
  lastCommitSigners: Uint8Array[] | null;
  txs: Uint8Array[];
}

export function encodeStoredBlock(block: BlockInput): Uint8Array {
  const record: StoredBlockRecord = {
    height: block.height,
    time: block.time,
    hash: block.hash,
    proposer: block.proposer,
    lastCommitSigners: block.lastCommitSigners === null ? null : [...block.lastCommitSigners],
    txs: block.txs.map((t) => encodeTx(t.tx)),
  };
  return encodeEntry(record);
}

export function decodeStoredBlock(bytes: Uint8Array): BlockInput {
  const r = decodeEntry(bytes) as StoredBlockRecord;
  return { ...r, txs: r.txs.map((t) => ({ tx: decodeTx(t) })) };
}

function validatorUpdates(
  before: readonly ValidatorPower[],
  after: readonly ValidatorPower[],
): ValidatorUpdate[] {
  const old = new Map(before.map((v) => [v.address, v.power]));
  const updates: ValidatorUpdate[] = [];
  for (const v of after) {
    if (old.get(v.address) !== v.power) updates.push({ publicKey: fromHex(v.address), power: v.power });
    old.delete(v.address);
  }
  for (const address of [...old.keys()].sort()) updates.push({ publicKey: fromHex(address), power: 0n });
  return updates;
}

const MAX_VERIFIED_CACHE = 100_000;

export interface LedgerAppOptions {
  /** The state to start from: genesis, or the store's committed state. */
  state: LedgerState;
  store?: LedgerStore | undefined;
  machine?: StateMachine | undefined;
}

export class LedgerApp implements ConsensusApp<SignedTx> {
  private state: LedgerState;
  private readonly store: LedgerStore | undefined;
  private readonly machine: StateMachine;
  private pending: { block: BlockInput; result: BlockResult } | undefined;
  private readonly verified = new Map<string, boolean>();

  constructor(options: LedgerAppOptions) {
    this.state = options.state;
    this.store = options.store;
    this.machine = options.machine ?? new StateMachine();
  }

  /** The committed state. */
  get current(): LedgerState {
    return this.state;
  }

  async info(): Promise<AppInfo> {
    return { lastHeight: this.state.tables.meta.get("meta")!.height, lastAppHash: this.state.root };
  }

  async initChain(request: InitChainRequest): Promise<InitChainResponse> {
    const meta = this.state.tables.meta.get("meta")!;
    if (request.chainId !== meta.chainId) {
      throw new Error(`initChain for ${request.chainId}, but the genesis is for ${meta.chainId}`);
    }
    return {
      appHash: this.state.root,
      validators: meta.validators.map((v) => ({ publicKey: fromHex(v.address), power: v.power })),
    };
  }

  /** The signature check, once per transaction id. */
  authenticate(tx: SignedTx): TxInput | undefined {
    const hash = txHash(tx);
    const key = toHex(hash);
    let ok = this.verified.get(key);
    if (ok === undefined) {
      ok = verify(tx.signature, signingBytes(tx.payload), tx.signer);
      if (this.verified.size >= MAX_VERIFIED_CACHE) this.verified.clear();
      this.verified.set(key, ok);
    }
    return ok ? { tx, hash } : undefined;
  }

  /** Keeps, in order, the mempool's transactions that would succeed on top of the committed state. */
  async prepareProposal(request: PrepareProposalRequest<SignedTx>): Promise<SignedTx[]> {
    const params = this.state.tables.params.get("params")!;
    const inputs = request.txs
      .map((tx) => this.authenticate(tx))
      .filter((t): t is TxInput => t !== undefined);
    const max = Math.min(request.maxTxs, params.maxTxsPerBlock);
    return this.machine.selectTxs(this.state, inputs, max).map((t) => t.tx);
  }

  /** Refuses blocks with too many transactions or a forged signature; failing transactions are fine. */
  async processProposal(request: LedgerProposal): Promise<boolean> {
    const params = this.state.tables.params.get("params")!;
    if (request.txs.length > params.maxTxsPerBlock) return false;
    return request.txs.every((tx) => this.authenticate(tx) !== undefined);
  }

  async finalizeBlock(request: LedgerProposal): Promise<FinalizeBlockResponse> {
    const authenticated = request.txs.map((tx) => this.authenticate(tx));
    const block: BlockInput = {
      height: request.height,
      time: request.time,
      hash: request.hash,
      proposer: request.proposer,
      lastCommitSigners: request.lastCommitSigners ?? null,
      txs: authenticated.filter((t): t is TxInput => t !== undefined),
    };
    const result = this.machine.applyBlock(this.state, block);
    this.pending = { block, result };
    const outcomes = [...result.txResults];
    const txResults = authenticated.map((t): { code: number; log: string } => {
      if (!t) return { code: txCode("TX_BAD_SIGNATURE"), log: "the signature does not verify" };
      const o = outcomes.shift() as TxOutcome;
      return { code: txCode(o.code), log: o.message };
    });
    const before = this.state.tables.meta.get("meta")!.validators;
    return {
      txResults,
      validatorUpdates: validatorUpdates(before, result.validators),
      appHash: result.state.root,
    };
  }

  async commit(): Promise<void> {
    const pending = this.pending;
    if (!pending) throw new Error("commit without a finalized block");
    if (this.store) {
      await this.store.commit(
        pending.block.height,
        encodeStoredBlock(pending.block),
        pending.result.changes,
        pending.result.state.root,
      );
    }
    this.state = pending.result.state;
    this.pending = undefined;
  }

  /** Re-executes a stored block (for LedgerStore.replay). */
  replayBlock(state: LedgerState, block: StoredBlock): LedgerState {
    const input = decodeStoredBlock(block.block);
    return this.machine.applyBlock(state, {
      ...input,
      txs: input.txs.map((t) => {
        const a = this.authenticate(t.tx);
        if (!a) throw new Error(`stored block ${block.height} holds a transaction with a bad signature`);
        return a;
      }),
    }).state;
  }
}
