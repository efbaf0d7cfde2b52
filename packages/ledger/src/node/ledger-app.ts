/**
 * The ledger as consensus sees it: the state machine behind the ABCI-shaped `ConsensusApp`, and the
 * ledger store behind consensus's `BlockStore`. A decided block, its commit and the state it leads
 * to are written in ONE atomic batch (in `put`, which consensus calls right after `commit`), so a
 * crash leaves either the whole block or none of it. On open, the block log is replayed from
 * genesis and every height's state root checked; the replay also rebuilds the validator sets, with
 * their proposer priorities, that consensus needs to resume at the next height.
 */
import { decodeCommit, encodeCommit, merkleRoot, type SignedTx } from "@deepshard/protocol";
import type {
  AppInfo,
  ConsensusApp,
  FinalizeBlockResponse,
  InitChainRequest,
  InitChainResponse,
  PrepareProposalRequest,
  ProposalInfo,
} from "../consensus/app.ts";
import type { BlockHashing, SyncedBlock } from "../consensus/block.ts";
import { signedTxBlockHashing } from "../consensus/encoding.ts";
import { compactBlockCodec, fromCompactBlock, toCompactBlock } from "../consensus/libp2p-transport.ts";
import type { ResumePoint } from "../consensus/node.ts";
import type { BlockStore } from "../consensus/store.ts";
import { ValidatorSet, type ValidatorUpdate } from "../consensus/validators.ts";
import { type Genesis, genesisState } from "../genesis/genesis.ts";
import { SignatureCache } from "../mempool/signatures.ts";
import { txInfo } from "../mempool/tx-info.ts";
import { decodeEntry, encodeEntry } from "../state/codec.ts";
import { StateError, type TxErrorCode } from "../state/errors.ts";
import { fromHex, toHex } from "../state/hashing.ts";
import { type BlockInput, type BlockResult, StateMachine } from "../state/machine.ts";
import type { LedgerState } from "../state/tables.ts";
import type { Meta, ValidatorPower } from "../state/types.ts";
import type { LedgerStore, StoredBlock } from "../store/ledger-store.ts";

/** Header and commit hashes of the protocol, tx ids from the shared per-object cache. */
export const ledgerBlockHashing: BlockHashing<SignedTx> = {
  headerHash: signedTxBlockHashing.headerHash,
  commitHash: signedTxBlockHashing.commitHash,
  txRoot: (txs) => merkleRoot(txs.map((tx) => txInfo(tx).hash)),
};

/** Numeric result codes of finalizeBlock (0 is success), one per TxErrorCode, in this fixed order. */
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

function metaOf(state: LedgerState): Meta {
  return state.tables.meta.get("meta")!;
}

function toUpdates(set: readonly ValidatorPower[]): ValidatorUpdate[] {
  return set.map((v) => ({ publicKey: fromHex(v.address), power: v.power }));
}

/** Power changes from one set to the next (power 0 removes). */
function diffSets(before: readonly ValidatorPower[], after: readonly ValidatorPower[]): ValidatorUpdate[] {
  const next = new Map(after.map((v) => [v.address, v.power]));
  const updates: ValidatorUpdate[] = [];
  for (const v of before)
    if (!next.has(v.address)) updates.push({ publicKey: fromHex(v.address), power: 0n });
  const prev = new Map(before.map((v) => [v.address, v.power]));
  for (const v of after)
    if (prev.get(v.address) !== v.power) updates.push({ publicKey: fromHex(v.address), power: v.power });
  return updates;
}

/**
 * The state machine's view of a block. The signers of the previous height's commit, carried by
 * the block (so the same on every node), are what downtime jailing counts.
 */
function blockInput(block: ProposalInfo<SignedTx>): BlockInput {
  return {
    height: block.height,
    time: block.time,
    hash: block.hash,
    proposer: block.proposer,
    lastCommitSigners: block.lastCommit ? block.lastCommit.signatures.map((s) => s.validator) : null,
    txs: block.txs.map((tx) => ({ tx, hash: txInfo(tx).hash })),
  };
}

/** A stored block: the compact block (transactions as their bytes, encoded once already) and its commit. */
function encodeStored(entry: SyncedBlock<SignedTx>): Uint8Array {
  return encodeEntry({
    block: compactBlockCodec.encode(toCompactBlock(entry.block)),
    commit: encodeCommit(entry.commit),
  });
}

function decodeStored(bytes: Uint8Array): SyncedBlock<SignedTx> {
  const raw = decodeEntry(bytes) as { block: Uint8Array; commit: Uint8Array };
  return {
    block: fromCompactBlock(compactBlockCodec.decode(raw.block)),
    commit: decodeCommit(raw.commit),
  };
}

export interface LedgerChainOptions {
  store: LedgerStore;
  genesis: Genesis;
  signatures?: SignatureCache | undefined;
  machine?: StateMachine | undefined;
}

interface Executed {
  hash: string;
  result: BlockResult;
}

export class LedgerChain implements ConsensusApp<SignedTx>, BlockStore<SignedTx> {
  readonly store: LedgerStore;
  readonly genesis: Genesis;
  readonly signatures: SignatureCache;
  private readonly machine: StateMachine;
  private _state: LedgerState;
  private resumePoint: ResumePoint | undefined;
  /** Blocks executed by processProposal, so finalizeBlock does not run them again. */
  private readonly executed = new Map<string, Executed>();
  /** The block finalizeBlock ran and `put` persists. */
  private pending: Executed | undefined;
  /** Recently stored blocks, served to syncing peers without decoding. */
  private readonly recent = new Map<number, SyncedBlock<SignedTx>>();

  private constructor(options: LedgerChainOptions, state: LedgerState, resume: ResumePoint | undefined) {
    this.store = options.store;
    this.genesis = options.genesis;
    this.signatures = options.signatures ?? new SignatureCache();
    this.machine = options.machine ?? new StateMachine();
    this._state = state;
    this.resumePoint = resume;
  }

  /**
   * Opens the chain in `store`: writes the genesis state into an empty store, or replays the
   * stored block log from genesis, checking each height's state root and the head's.
   */
  static async open(options: LedgerChainOptions): Promise<LedgerChain> {
    const { store, genesis } = options;
    const machine = options.machine ?? new StateMachine();
    const initial = genesisState(genesis);
    await store.init(initial);
    const head = store.head()!;
    if (head.height === 0) return new LedgerChain({ ...options, machine }, initial, undefined);
    let validators = ValidatorSet.create(toUpdates(metaOf(initial).validators));
    let lastValidators = validators;
    const state = await store.replay(initial, (prev, stored: StoredBlock) => {
      const { block } = decodeStored(stored.block);
      const h = block.header;
      const input = blockInput({
        height: h.height,
        time: h.time,
        hash: ledgerBlockHashing.headerHash(h),
        proposer: h.proposer,
        txs: block.txs,
        lastCommit: block.lastCommit,
      });
      const result = machine.applyBlock(prev, input);
      lastValidators = validators;
      validators = validators.next(diffSets(metaOf(prev).validators, result.validators));
      return result.state;
    });
    return new LedgerChain({ ...options, machine }, state, { validators, lastValidators });
  }

  /** The committed state. */
  get state(): LedgerState {
    return this._state;
  }

  get height(): number {
    return metaOf(this._state).height;
  }

  /** The validator sets consensus resumes with (only after `open` replayed blocks). */
  async resume(lastHeight: number): Promise<ResumePoint> {
    if (!this.resumePoint || lastHeight !== this.height) {
      throw new StateError("STATE_BAD_BLOCK", `no resume point at height ${lastHeight}`);
    }
    return this.resumePoint;
  }

  // ---- ConsensusApp ----

  async info(): Promise<AppInfo> {
    return { lastHeight: this.height, lastAppHash: this._state.root };
  }

  async initChain(request: InitChainRequest): Promise<InitChainResponse> {
    if (request.chainId !== this.genesis.chainId) {
      throw new StateError(
        "STATE_BAD_BLOCK",
        `initChain for ${request.chainId}, but the genesis is for ${this.genesis.chainId}`,
      );
    }
    return { appHash: this._state.root, validators: toUpdates(metaOf(this._state).validators) };
  }

  /** The mempool's transactions (signatures checked there) that succeed one after the other, in its order. */
  async prepareProposal(request: PrepareProposalRequest<SignedTx>): Promise<SignedTx[]> {
    const inputs = request.txs.map((tx) => ({ tx, hash: txInfo(tx).hash }));
    const max = Math.min(request.maxTxs, this.genesis.params.maxTxsPerBlock);
    return this.machine.selectTxs(this._state, inputs, max).map((t) => t.tx);
  }

  /** Refuses a block with a forged signature or a repeated transaction; executes it once otherwise. */
  async processProposal(request: ProposalInfo<SignedTx>): Promise<boolean> {
    if (!(await this.authentic(request.txs))) return false;
    try {
      this.execute(request);
    } catch {
      return false;
    }
    return true;
  }

  async finalizeBlock(request: ProposalInfo<SignedTx>): Promise<FinalizeBlockResponse> {
    const id = toHex(request.hash);
    let executed = this.executed.get(id);
    if (!executed) {
      // A synced block: its commit was verified, but the transactions' signatures are checked here.
      if (!(await this.authentic(request.txs))) {
        throw new StateError("STATE_BAD_BLOCK", `block ${request.height} carries an invalid transaction`);
      }
      executed = this.execute(request);
    }
    this.executed.clear();
    this.pending = executed;
    const { result } = executed;
    return {
      txResults: result.txResults.map((r) =>
        r.code === "OK" ? { code: 0 } : { code: txCode(r.code), log: r.code },
      ),
      validatorUpdates: diffSets(metaOf(this._state).validators, result.validators),
      appHash: result.state.root,
    };
  }

  /** The state becomes the committed one; it reaches the disk with its block, in `put`. */
  async commit(): Promise<void> {}

  private async authentic(txs: readonly SignedTx[]): Promise<boolean> {
    const ids = new Set<string>();
    for (const tx of txs) ids.add(txInfo(tx).id);
    if (ids.size !== txs.length) return false;
    return (await this.signatures.verifyAll(txs)).every(Boolean);
  }

  private execute(request: ProposalInfo<SignedTx>): Executed {
    const id = toHex(request.hash);
    const cached = this.executed.get(id);
    if (cached) return cached;
    const input = blockInput(request);
    const executed = { hash: id, result: this.machine.applyBlock(this._state, input) };
    this.executed.set(id, executed);
    return executed;
  }

  // ---- BlockStore ----

  async latestHeight(): Promise<number> {
    return this.store.head()?.height ?? 0;
  }

  async get(height: number): Promise<SyncedBlock<SignedTx> | undefined> {
    const cached = this.recent.get(height);
    if (cached) return cached;
    const stored = await this.store.getBlock(height);
    return stored && decodeStored(stored.block);
  }

  /** Persists the block consensus just committed, with the state `finalizeBlock` produced. */
  async put(entry: SyncedBlock<SignedTx>): Promise<void> {
    const pending = this.pending;
    const height = entry.block.header.height;
    if (!pending || pending.hash !== toHex(ledgerBlockHashing.headerHash(entry.block.header))) {
      throw new StateError("STATE_BAD_BLOCK", `block ${height} was not the one finalized`);
    }
    const { result } = pending;
    await this.store.commit(height, encodeStored(entry), result.changes, result.state.root);
    this._state = result.state;
    this.pending = undefined;
    this.recent.set(height, entry);
    this.recent.delete(height - 64);
  }
}
