/**
 * A simulated network of consensus nodes for tests: real ed25519 keys, the protocol's encodings,
 * the KvApp, and the seeded in-memory network. Records every commit of every node so tests can
 * check safety (one block per height across nodes) and verify every commit.
 */
import { sha256 } from "@deepshard/protocol";
import {
  type Block,
  bytesBlockHashing,
  type ConsensusMessage,
  ConsensusNode,
  type ConsensusSigner,
  type ConsensusTransport,
  type DuplicateVoteEvidence,
  keySigner,
  MemoryDb,
  type ProposalMessage,
  protocolCrypto,
  SimNetwork,
  type SimTransport,
  type SyncedBlock,
  type TimeoutConfig,
  type TxSource,
  ValidatorSet,
  VoteLog,
  type VoteMessage,
  verifyCommit,
} from "../../src/index.ts";
import { KvApp } from "./kv-app.ts";

export const CHAIN_ID = "deepshard-sim";

/** Timeouts for simulations: a few times the largest message delay. */
export const SIM_TIMEOUTS: TimeoutConfig = {
  propose: { base: 1000, perRound: 500 },
  prevote: { base: 500, perRound: 250 },
  precommit: { base: 500, perRound: 250 },
};

export interface ClusterOptions {
  seed: number;
  powers: bigint[];
  loss?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  /**
   * Indices of Byzantine validators: they sign two different votes for every vote they cast, and
   * two different blocks for every proposal they make.
   */
  doubleSigners?: number[];
  /** Whether the application removes a validator on evidence (default true). */
  punish?: boolean;
  /** Gives every validator a VoteLog over an in-memory database. */
  voteLogs?: boolean;
  /** Each validator's pause after a commit (default 50 ms for all). */
  commitTimeouts?: number[];
}

export interface SimValidator {
  id: string;
  signer: ConsensusSigner;
  node: ConsensusNode<Uint8Array>;
  app: KvApp;
  voteLog: VoteLog | undefined;
  /** Block hash (hex) by height, as this node committed them. */
  committed: Map<number, string>;
  synced: number;
  evidence: DuplicateVoteEvidence[];
}

/** Makes one transaction per proposal so blocks are not empty. */
class CounterTxs implements TxSource<Uint8Array> {
  private n = 0;
  private readonly prefix: string;
  constructor(prefix: string) {
    this.prefix = prefix;
  }
  reap(): Uint8Array[] {
    return [new TextEncoder().encode(`${this.prefix}:${this.n++}`)];
  }
  update(): void {}
}

/**
 * Every vote this validator sends goes out twice: as cast, and for another value (nil ↔ a random
 * hash), in opposite orders to alternate peers, so each peer counts a different one first.
 */
class DoubleSigningTransport implements ConsensusTransport<Uint8Array> {
  readonly id: string;
  private flip = 0;
  private readonly inner: SimTransport<Uint8Array>;
  private readonly network: SimNetwork<Uint8Array>;
  private readonly signer: ConsensusSigner;
  constructor(inner: SimTransport<Uint8Array>, network: SimNetwork<Uint8Array>, signer: ConsensusSigner) {
    this.id = inner.id;
    this.inner = inner;
    this.network = network;
    this.signer = signer;
  }

  broadcast(message: ConsensusMessage<Block<Uint8Array>>): void {
    const twin = message.type === "vote" ? this.twinVote(message) : this.twinProposal(message);
    if (!twin) return;
    this.network.peerIds().forEach((peer, i) => {
      if (peer === this.id) return;
      const [first, second] = i % 2 === 0 ? [message, twin] : [twin, message];
      this.inner.sendTo(peer, first);
      this.inner.sendTo(peer, second);
    });
  }

  private sign<P extends Parameters<typeof protocolCrypto.signingBytes>[0]>(payload: P) {
    return {
      payload,
      signer: this.signer.publicKey,
      signature: this.signer.sign(protocolCrypto.signingBytes(payload)),
    };
  }

  private twinVote(message: VoteMessage): ConsensusMessage<Block<Uint8Array>> {
    const { payload } = message.vote;
    const blockHash = payload.blockHash === null ? sha256(Uint8Array.of(this.flip++)) : null;
    return { v: 1, type: "vote", vote: this.sign({ ...payload, blockHash }) };
  }

  /** The same block with one more transaction: valid, and different. */
  private twinProposal(
    message: ProposalMessage<Block<Uint8Array>>,
  ): ConsensusMessage<Block<Uint8Array>> | undefined {
    // A re-proposal of a locked block cannot be forged into a valid other one; send it as is.
    if (message.proposal.payload.polRound !== -1) {
      this.inner.broadcast(message);
      return undefined;
    }
    const txs = [...message.block.txs, Uint8Array.of(this.flip++)];
    const header = { ...message.block.header, txRoot: bytesBlockHashing.txRoot(txs) };
    const block = { ...message.block, header, txs };
    const blockHash = bytesBlockHashing.headerHash(header);
    return { v: 1, type: "proposal", proposal: this.sign({ ...message.proposal.payload, blockHash }), block };
  }

  onMessage(handler: (message: ConsensusMessage<Block<Uint8Array>>, from: string) => void): void {
    this.inner.onMessage(handler);
  }

  requestBlocks(peer: string, fromHeight: number, maxBlocks: number): Promise<SyncedBlock<Uint8Array>[]> {
    return this.inner.requestBlocks(peer, fromHeight, maxBlocks);
  }

  onBlocksRequest(
    handler: (fromHeight: number, maxBlocks: number) => Promise<SyncedBlock<Uint8Array>[]>,
  ): void {
    this.inner.onBlocksRequest(handler);
  }
}

export class Cluster {
  readonly net: SimNetwork<Uint8Array>;
  readonly validators: SimValidator[] = [];
  /** The validator set of each height, as the first node saw it (to verify commits). */
  readonly setAt = new Map<number, ValidatorSet>();

  constructor(options: ClusterOptions) {
    this.net = new SimNetwork<Uint8Array>({
      seed: options.seed,
      loss: options.loss ?? 0,
      minDelayMs: options.minDelayMs ?? 5,
      maxDelayMs: options.maxDelayMs ?? 50,
    });
    const signers = options.powers.map((_, i) =>
      keySigner(sha256(new TextEncoder().encode(`validator-${i}`))),
    );
    const genesis = {
      validators: signers.map((s, i) => ({ publicKey: s.publicKey, power: options.powers[i]! })),
    };
    this.setAt.set(1, ValidatorSet.create(genesis.validators));
    signers.forEach((signer, i) => {
      const id = `v${i}`;
      const inner = this.net.transport(id);
      const transport = options.doubleSigners?.includes(i)
        ? new DoubleSigningTransport(inner, this.net, signer)
        : inner;
      const app = new KvApp(options.punish ?? true);
      const voteLog = options.voteLogs ? new VoteLog(new MemoryDb()) : undefined;
      const node = new ConsensusNode<Uint8Array>({
        chainId: CHAIN_ID,
        genesis,
        app,
        transport,
        crypto: protocolCrypto,
        hashing: bytesBlockHashing,
        signer,
        timer: this.net.scheduler,
        txs: new CounterTxs(id),
        signLog: voteLog,
        timeouts: SIM_TIMEOUTS,
        commitTimeoutMs: options.commitTimeouts?.[i] ?? 50,
        gossipIntervalMs: 400,
        syncDelayMs: 300,
      });
      const v: SimValidator = {
        id,
        signer,
        node,
        app,
        voteLog,
        committed: new Map(),
        synced: 0,
        evidence: [],
      };
      node.onCommit((c) => {
        v.committed.set(c.height, Buffer.from(c.hash).toString("hex"));
        if (c.synced) v.synced++;
        if (i === 0) this.setAt.set(c.height + 1, node.validators);
      });
      node.onEvidence((e) => v.evidence.push(e));
      this.validators.push(v);
    });
  }

  async start(): Promise<void> {
    for (const v of this.validators) await v.node.start();
  }

  stop(): void {
    for (const v of this.validators) v.node.stop();
  }

  /** The highest height every listed validator has committed. */
  minHeight(indices = this.validators.map((_, i) => i)): number {
    return Math.min(...indices.map((i) => this.validators[i]!.node.height - 1));
  }

  maxHeight(indices = this.validators.map((_, i) => i)): number {
    return Math.max(...indices.map((i) => this.validators[i]!.node.height - 1));
  }

  /** Runs virtual time until `done()` or until `forMs` more milliseconds have passed. */
  run(forMs: number, done?: () => boolean): Promise<boolean> {
    return this.net.scheduler.run(this.net.scheduler.now() + forMs, done);
  }

  /** Every height committed by two nodes has the same block hash on both (no fork). */
  assertNoFork(): number {
    const byHeight = new Map<number, string>();
    for (const v of this.validators) {
      for (const [height, hash] of v.committed) {
        const seen = byHeight.get(height);
        if (seen !== undefined && seen !== hash)
          throw new Error(`fork at height ${height}: ${seen} vs ${hash}`);
        byHeight.set(height, hash);
      }
    }
    return byHeight.size;
  }

  /** Every height executed by two applications left both with the same app hash. */
  assertSameAppState(): void {
    const byHeight = new Map<number, string>();
    for (const v of this.validators) {
      for (const [height, hash] of v.app.hashes) {
        const seen = byHeight.get(height);
        if (seen !== undefined && seen !== hash) throw new Error(`app hashes differ at height ${height}`);
        byHeight.set(height, hash);
      }
    }
  }

  /** The highest round any block of `validator`'s chain was decided in. */
  async maxDecisionRound(index: number): Promise<number> {
    const node = this.validators[index]!.node;
    let max = 0;
    for (let h = 1; h < node.height; h++) max = Math.max(max, (await node.store.get(h))!.commit.round);
    return max;
  }

  /** Verifies the commit of every block `validator` stored, against the validator set of its height. */
  async verifyCommits(index: number): Promise<number> {
    const node = this.validators[index]!.node;
    let checked = 0;
    for (let h = 1; h < node.height; h++) {
      const entry = await node.store.get(h);
      if (!entry) throw new Error(`height ${h} missing from the store of v${index}`);
      verifyCommit(entry.commit, {
        chainId: CHAIN_ID,
        validators: this.setAt.get(h)!,
        crypto: protocolCrypto,
        blockHash: bytesBlockHashing.headerHash(entry.block.header),
        height: h,
      });
      checked++;
    }
    return checked;
  }

  /** Node errors absorbed while running (application failures); a healthy run has none. */
  errors(): unknown[] {
    return this.validators.flatMap((v) => v.node.errors);
  }
}
