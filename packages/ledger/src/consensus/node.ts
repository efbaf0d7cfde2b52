/**
 * A consensus node: drives the Tendermint engine over a transport and a timer, builds and checks
 * blocks, runs the application through its ABCI-shaped interface, keeps committed blocks for
 * block sync, and catches up from peers when it falls behind.
 *
 * All work runs through one serial queue, so the engine and the application see events one at a
 * time and in the same order on every run of a simulation.
 */
import type { ConsensusApp, TxResult, TxSource } from "./app.ts";
import { type Block, type BlockHashing, type SyncedBlock, ZERO_HASH } from "./block.ts";
import { verifyCommit } from "./commit.ts";
import { equalBytes, toHex } from "./encoding.ts";
import { type EngineAction, TendermintEngine, type TimeoutConfig } from "./engine.ts";
import { ConsensusError } from "./errors.ts";
import { type BlockStore, MemoryBlockStore } from "./store.ts";
import { type ConsensusTransport, systemTimer, type Timer } from "./transport.ts";
import type {
  Commit,
  ConsensusCrypto,
  ConsensusMessage,
  ConsensusSigner,
  DuplicateVoteEvidence,
} from "./types.ts";
import { ValidatorSet, type ValidatorUpdate } from "./validators.ts";

export interface GenesisConsensus {
  validators: ValidatorUpdate[];
  /** The first height to decide; 1 unless a chain restarts from an exported state. */
  initialHeight?: number;
}

/**
 * A validator's durable log of what it signed (the ledger's VoteLog): `record` must resolve before
 * a signed message leaves the node, and rejects a different payload for the same height, round and
 * type, so a node that crashed and restarted cannot sign twice.
 */
export interface SignLog {
  /** Called with the vote or proposal payload (VotePayload | ProposalPayload). */
  record(payload: { type: string; height: number; round: number }): Promise<void>;
  /** Forgets entries below `height`. */
  prune?(height: number): Promise<void>;
}

export interface ConsensusNodeOptions<Tx> {
  chainId: string;
  genesis: GenesisConsensus;
  app: ConsensusApp<Tx>;
  transport: ConsensusTransport<Tx>;
  crypto: ConsensusCrypto;
  hashing: BlockHashing<Tx>;
  /** The validator key; a node without one follows the chain without voting. */
  signer?: ConsensusSigner | undefined;
  timer?: Timer | undefined;
  /** Where this validator logs what it signs before sending it; required for a validator that can restart. */
  signLog?: SignLog | undefined;
  /** Candidate transactions for the blocks this node proposes. */
  txs?: TxSource<Tx> | undefined;
  store?: BlockStore<Tx> | undefined;
  timeouts?: TimeoutConfig | undefined;
  /**
   * Pause between committing a block and starting the next height (CometBFT's timeout_commit): the
   * next proposer collects late precommits meanwhile; the other validators start the height as
   * soon as they hear from it.
   */
  commitTimeoutMs?: number | undefined;
  /** How often a node re-broadcasts its own messages of the current height (covers lost messages). */
  gossipIntervalMs?: number | undefined;
  /** How long a node waits, after hearing of a higher height, before it asks for blocks. */
  syncDelayMs?: number | undefined;
  /** Blocks asked for per sync request. */
  syncBatch?: number | undefined;
  maxBlockTxs?: number | undefined;
  /** Evidence is offered to the proposer's application for this many heights after it was seen. */
  evidenceMaxAgeHeights?: number | undefined;
  /**
   * For a node restarting on an application that already holds blocks: the validator sets around
   * its last height (with proposer priorities, so the restarted node picks the same proposers as
   * the others). The last block and its commit come from `store`.
   */
  resume?: ((lastHeight: number) => Promise<ResumePoint>) | undefined;
}

export interface ResumePoint {
  /** The set that decides lastHeight + 1. */
  validators: ValidatorSet;
  /** The set that decided lastHeight: the signers of its commit. */
  lastValidators: ValidatorSet;
}

export interface CommittedBlock<Tx> {
  height: number;
  hash: Uint8Array;
  block: Block<Tx>;
  commit: Commit;
  /** The application hash after this block. */
  appHash: Uint8Array;
  txResults: TxResult[];
  /** True when the block came from block sync rather than from this node's own decision. */
  synced: boolean;
}

interface PendingEvidence {
  evidence: DuplicateVoteEvidence;
  seenAt: number;
}

export class ConsensusNode<Tx> {
  readonly chainId: string;
  readonly engine: TendermintEngine<Block<Tx>>;
  readonly store: BlockStore<Tx>;
  /** Failures of the application or of this node that were absorbed to keep running. */
  readonly errors: unknown[] = [];
  /** Proposed or synced blocks refused as invalid (a faulty or malicious peer, not this node). */
  readonly rejected: ConsensusError[] = [];
  private readonly options: ConsensusNodeOptions<Tx>;
  private readonly timer: Timer;
  private readonly transport: ConsensusTransport<Tx>;
  private readonly hashing: BlockHashing<Tx>;
  private readonly commitListeners = new Set<(c: CommittedBlock<Tx>) => void>();
  private readonly evidenceListeners = new Set<(e: DuplicateVoteEvidence) => void>();
  private readonly evidencePool = new Map<string, PendingEvidence>();
  /** Own messages the sign log refused: never sent, not even by gossip. */
  private readonly refused = new WeakSet<object>();
  private queue: Promise<void> = Promise.resolve();
  /** The sign log's pruning, off the serial queue (see commitBlock). */
  private pruning: Promise<void> = Promise.resolve();
  private running = false;
  private cancelGossip: (() => void) | undefined;

  private _height = 0;
  private _validators: ValidatorSet | undefined;
  private prevValidators: ValidatorSet | undefined;
  private lastBlockHash: Uint8Array = ZERO_HASH;
  private lastAppHash: Uint8Array = ZERO_HASH;
  private lastBlockTime = -1;
  private lastCommit: Commit | null = null;
  private engineHeight = 0;
  private aheadHeight = 0;
  private aheadPeer = "";
  private syncPending = false;

  constructor(options: ConsensusNodeOptions<Tx>) {
    this.options = options;
    this.chainId = options.chainId;
    this.timer = options.timer ?? systemTimer;
    this.transport = options.transport;
    this.hashing = options.hashing;
    this.store = options.store ?? new MemoryBlockStore();
    this.engine = new TendermintEngine<Block<Tx>>({
      chainId: options.chainId,
      crypto: options.crypto,
      valueHash: (block) => this.hashing.headerHash(block.header),
      signer: options.signer,
      timeouts: options.timeouts,
    });
  }

  /** The next height to decide. */
  get height(): number {
    return this._height;
  }

  /** The validator set of the next height. */
  get validators(): ValidatorSet {
    if (!this._validators) throw new ConsensusError("NOT_STARTED", "the node has not started");
    return this._validators;
  }

  get appHash(): Uint8Array {
    return this.lastAppHash;
  }

  /** Duplicate votes this node has seen and not yet aged out. */
  get pendingEvidence(): DuplicateVoteEvidence[] {
    return [...this.evidencePool.values()].map((e) => e.evidence);
  }

  onCommit(listener: (c: CommittedBlock<Tx>) => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  onEvidence(listener: (e: DuplicateVoteEvidence) => void): () => void {
    this.evidenceListeners.add(listener);
    return () => this.evidenceListeners.delete(listener);
  }

  async start(): Promise<void> {
    const { app, genesis } = this.options;
    const info = await app.info();
    if (info.lastHeight !== 0) {
      await this.resume(info.lastHeight, info.lastAppHash);
    } else {
      const initialHeight = genesis.initialHeight ?? 1;
      const init = await app.initChain({
        chainId: this.chainId,
        initialHeight,
        validators: genesis.validators,
      });
      this._validators = ValidatorSet.create(init.validators ?? genesis.validators);
      this.lastAppHash = init.appHash;
      this._height = initialHeight;
    }
    this.running = true;
    this.transport.onMessage((message, from) => this.onMessage(message, from));
    this.transport.onBlocksRequest((fromHeight, maxBlocks) => this.serveBlocks(fromHeight, maxBlocks));
    this.scheduleGossip();
    this.enqueue(() => this.startEngine());
  }

  /** Continues after the application's last block, which the block store must hold with its commit. */
  private async resume(lastHeight: number, lastAppHash: Uint8Array): Promise<void> {
    const fail = (message: string): never => {
      throw new ConsensusError("NOT_STARTED", message, { meta: { lastHeight } });
    };
    if (!this.options.resume) fail("the application already has blocks and the node has no resume hook");
    const last = await this.store.get(lastHeight);
    if (!last) return fail("the block store lacks the application's last block");
    const hash = this.hashing.headerHash(last.block.header);
    if (!equalBytes(last.commit.blockHash, hash)) fail("the stored commit is not for the stored block");
    const point = await this.options.resume!(lastHeight);
    this._validators = point.validators;
    this.prevValidators = point.lastValidators;
    this.lastBlockHash = hash;
    this.lastAppHash = lastAppHash;
    this.lastBlockTime = last.block.header.time;
    this.lastCommit = last.commit;
    this._height = lastHeight + 1;
  }

  /** Stops timers and ignores further events; the transport is closed by its owner. */
  stop(): void {
    this.running = false;
    this.cancelGossip?.();
  }

  /** Waits until all queued work has run (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const tail = this.queue;
      await tail;
      if (tail === this.queue) break;
    }
    await this.pruning;
  }

  private enqueue(job: () => Promise<void> | void): void {
    const run = this.queue.then(async () => {
      if (!this.running) return;
      try {
        await job();
      } catch (err) {
        this.errors.push(err);
      }
    });
    this.queue = run;
    this.timer.track?.(run);
  }

  private onMessage(message: ConsensusMessage<Block<Tx>>, from: string): void {
    this.enqueue(async () => {
      const height = message.type === "vote" ? message.vote.payload.height : message.proposal.payload.height;
      if (Number.isSafeInteger(height) && height > this._height) this.noteAhead(from, height);
      // The pause after a commit is for the next proposer (see commitTimeoutMs); a node that hears
      // from the next height already stops pausing. Otherwise it would keep only the next height's
      // messages and drop those of the one after (from validators a height ahead of a slow node).
      if (height >= this._height && this.engineHeight < this._height) await this.startEngine();
      await this.dispatch(this.engine.handle({ type: "message", message }));
    });
  }

  private async dispatch(actions: EngineAction<Block<Tx>>[]): Promise<void> {
    for (const action of actions) {
      switch (action.type) {
        case "broadcast":
          await this.send(action.message);
          break;
        case "scheduleTimeout": {
          const { kind, height, round } = action;
          this.timer.setTimeout(
            () =>
              this.enqueue(() => this.dispatch(this.engine.handle({ type: "timeout", kind, height, round }))),
            action.delayMs,
          );
          break;
        }
        case "requestValue": {
          const value = await this.buildBlock(action.height);
          await this.dispatch(
            this.engine.handle({ type: "value", height: action.height, round: action.round, value }),
          );
          break;
        }
        case "validateValue": {
          const valid = await this.validateBlock(action.value);
          const event = {
            type: "validated",
            height: action.height,
            valueHash: action.valueHash,
            valid,
          } as const;
          await this.dispatch(this.engine.handle(event));
          break;
        }
        case "decide":
          await this.commitBlock(action.value, action.commit, false);
          this.timer.setTimeout(
            () => this.enqueue(() => this.startEngine()),
            this.options.commitTimeoutMs ?? 1000,
          );
          break;
        case "evidence":
          this.addEvidence(action.evidence);
          break;
      }
    }
  }

  /** Sends a message this node signed, once the sign log holds it; a refused entry is never sent. */
  private async send(message: ConsensusMessage<Block<Tx>>): Promise<void> {
    const log = this.options.signLog;
    if (log) {
      try {
        await log.record(message.type === "vote" ? message.vote.payload : message.proposal.payload);
      } catch (err) {
        this.refused.add(message);
        this.absorb(err);
        return;
      }
    }
    this.transport.broadcast(message);
  }

  private async startEngine(): Promise<void> {
    if (this.engineHeight === this._height) return;
    this.engineHeight = this._height;
    await this.dispatch(
      this.engine.handle({ type: "start", height: this._height, validators: this.validators }),
    );
  }

  private async buildBlock(height: number): Promise<Block<Tx>> {
    const proposer = this.options.signer!.publicKey;
    const maxTxs = this.options.maxBlockTxs ?? 10_000;
    const lastCommit = this.fullestLastCommit();
    const txs = await this.options.app.prepareProposal({
      height,
      proposer,
      txs: this.options.txs?.reap(maxTxs) ?? [],
      maxTxs,
      misbehavior: this.pendingEvidence,
    });
    return {
      v: 1,
      header: {
        v: 1,
        chainId: this.chainId,
        height,
        time: Math.max(this.timer.now(), this.lastBlockTime + 1),
        prevHash: this.lastBlockHash,
        txRoot: this.hashing.txRoot(txs.slice(0, maxTxs)),
        appHash: this.lastAppHash,
        proposer,
        lastCommitHash: lastCommit ? this.hashing.commitHash(lastCommit) : ZERO_HASH,
      },
      txs: txs.slice(0, maxTxs),
      lastCommit,
    };
  }

  /**
   * The previous height's commit with every precommit this node has collected for it since it
   * decided, so validators that precommitted after the quorum are not counted as absent. A block
   * that came from sync carries the commit it came with.
   */
  private fullestLastCommit(): Commit | null {
    const last = this.lastCommit;
    if (!last) return null;
    const collected = this.engine.commitFor(last.height);
    if (!collected || collected.round !== last.round || !equalBytes(collected.blockHash, last.blockHash))
      return last;
    return collected.signatures.length > last.signatures.length ? collected : last;
  }

  /** The checks every block must pass whether proposed or synced; throws INVALID_BLOCK. */
  private checkBlock(block: Block<Tx>): void {
    const h = block.header;
    const fail = (message: string): never => {
      throw new ConsensusError("INVALID_BLOCK", message, { meta: { height: this._height } });
    };
    if (block.v !== 1 || h.v !== 1) fail("unknown block version");
    if (h.chainId !== this.chainId) fail("the block is for another chain");
    if (h.height !== this._height) fail("the block is for another height");
    if (!equalBytes(h.prevHash, this.lastBlockHash))
      fail("the block does not extend the last committed block");
    if (!equalBytes(h.appHash, this.lastAppHash)) fail("the block's app hash differs from this node's");
    if (!Number.isSafeInteger(h.time) || h.time <= this.lastBlockTime)
      fail("the block's time does not increase");
    if (!Array.isArray(block.txs) || block.txs.length > (this.options.maxBlockTxs ?? 10_000))
      fail("too many txs");
    if (!equalBytes(h.txRoot, this.hashing.txRoot(block.txs)))
      fail("the block's tx root does not match its txs");
    if (this.validators.powerOf(toHex(h.proposer)) === 0n) fail("the block's proposer is not a validator");
    if (block.lastCommit === null) {
      if (this.lastCommit !== null || !equalBytes(h.lastCommitHash, ZERO_HASH))
        fail("the block lacks a last commit");
      return;
    }
    if (!this.prevValidators) fail("the first block cannot carry a last commit");
    if (!equalBytes(h.lastCommitHash, this.hashing.commitHash(block.lastCommit)))
      fail("last commit hash mismatch");
    verifyCommit(block.lastCommit, {
      chainId: this.chainId,
      validators: this.prevValidators!,
      crypto: this.options.crypto,
      blockHash: this.lastBlockHash,
      height: this._height - 1,
    });
  }

  private async validateBlock(block: Block<Tx>): Promise<boolean> {
    try {
      this.checkBlock(block);
      return await this.options.app.processProposal(this.proposalInfo(block));
    } catch (err) {
      this.absorb(err);
      return false;
    }
  }

  private absorb(err: unknown): void {
    if (err instanceof ConsensusError && err.code.startsWith("INVALID_")) this.rejected.push(err);
    else this.errors.push(err);
  }

  private proposalInfo(block: Block<Tx>) {
    const h = block.header;
    return {
      height: h.height,
      hash: this.hashing.headerHash(h),
      proposer: h.proposer,
      txs: block.txs,
      time: h.time,
      lastCommit: block.lastCommit,
    };
  }

  private async commitBlock(block: Block<Tx>, commit: Commit, synced: boolean): Promise<void> {
    const { app } = this.options;
    const info = this.proposalInfo(block);
    const result = await app.finalizeBlock(info);
    await app.commit();
    await this.store.put({ block, commit });
    this.options.txs?.update(info.height, block.txs);
    this.prevValidators = this._validators;
    this._validators = this.validators.next(result.validatorUpdates);
    this.lastBlockHash = info.hash;
    this.lastAppHash = result.appHash;
    this.lastBlockTime = info.time;
    this.lastCommit = commit;
    this._height = info.height + 1;
    // Old entries are forgotten in the background, one prune at a time: nothing waits for it,
    // and a slow disk must not hold back the next height (it did, by up to a second per block).
    const log = this.options.signLog;
    if (log?.prune) {
      const height = info.height;
      this.pruning = this.pruning.then(() => log.prune!(height)).catch((err: unknown) => this.absorb(err));
      this.timer.track?.(this.pruning);
    }
    const maxAge = this.options.evidenceMaxAgeHeights ?? 100;
    for (const [key, entry] of this.evidencePool)
      if (entry.seenAt + maxAge < this._height) this.evidencePool.delete(key);
    const committed: CommittedBlock<Tx> = {
      height: info.height,
      hash: info.hash,
      block,
      commit,
      appHash: result.appHash,
      txResults: result.txResults,
      synced,
    };
    for (const listener of this.commitListeners) listener(committed);
  }

  private addEvidence(evidence: DuplicateVoteEvidence): void {
    const p = evidence.voteA.payload;
    const key = `${toHex(evidence.voteA.signer)}/${p.height}/${p.round}/${p.type}`;
    if (this.evidencePool.has(key)) return;
    this.evidencePool.set(key, { evidence, seenAt: p.height });
    for (const listener of this.evidenceListeners) listener(evidence);
  }

  private scheduleGossip(): void {
    const interval = this.options.gossipIntervalMs ?? 1000;
    this.cancelGossip = this.timer.setTimeout(() => {
      if (!this.running) return;
      this.enqueue(() => {
        for (const message of this.engine.gossip())
          if (!this.refused.has(message)) this.transport.broadcast(message);
      });
      this.scheduleGossip();
    }, interval);
  }

  private noteAhead(peer: string, height: number): void {
    if (height > this.aheadHeight) {
      this.aheadHeight = height;
      this.aheadPeer = peer;
    }
    if (this.syncPending) return;
    this.syncPending = true;
    this.timer.setTimeout(() => this.sync(), this.options.syncDelayMs ?? 500);
  }

  private sync(): void {
    if (!this.running || this.aheadHeight <= this._height) {
      this.syncPending = false;
      return;
    }
    const peer = this.aheadPeer;
    const done = () => {
      this.syncPending = false;
      if (this.aheadHeight > this._height) this.noteAhead(peer, this.aheadHeight);
    };
    this.transport.requestBlocks(peer, this._height, this.options.syncBatch ?? 32).then(
      (blocks) =>
        this.enqueue(async () => {
          try {
            await this.applySynced(blocks);
          } finally {
            done();
          }
        }),
      () => {
        // The peer may be gone: forget it, the next message from ahead names another.
        this.aheadHeight = this._height;
        this.syncPending = false;
      },
    );
  }

  /** Applies blocks a peer sent, each only after its commit verified against the current set. */
  private async applySynced(blocks: readonly SyncedBlock<Tx>[]): Promise<void> {
    let applied = false;
    for (const { block, commit } of blocks) {
      const height = block?.header?.height;
      if (height < this._height) continue;
      if (height !== this._height) break;
      try {
        verifyCommit(commit, {
          chainId: this.chainId,
          validators: this.validators,
          crypto: this.options.crypto,
          blockHash: this.hashing.headerHash(block.header),
          height,
        });
        this.checkBlock(block);
      } catch (err) {
        this.absorb(err);
        break;
      }
      await this.commitBlock(block, commit, true);
      applied = true;
    }
    if (applied) await this.startEngine();
  }

  private async serveBlocks(fromHeight: number, maxBlocks: number): Promise<SyncedBlock<Tx>[]> {
    const out: SyncedBlock<Tx>[] = [];
    const limit = Math.min(Math.max(0, Math.floor(maxBlocks)), this.options.syncBatch ?? 32);
    for (let h = Math.max(1, Math.floor(fromHeight)); out.length < limit; h++) {
      const entry = await this.store.get(h);
      if (!entry) break;
      out.push(entry);
    }
    return out;
  }
}
