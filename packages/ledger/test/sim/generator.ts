/**
 * A deterministic simulation of the ledger: from one seed, blocks of random valid and invalid
 * transactions of every kind, validators going offline, double-signing, data and training rounds,
 * all through the real state machine. The same seed always yields the same blocks and roots.
 */
import {
  CRITERIA,
  keyPairFromSecret,
  sha256Parts,
  sign,
  signingBytes,
  type TxPayload,
  type Vote,
} from "@deepshard/protocol";
import { createGenesis, genesisState } from "../../src/genesis/genesis.ts";
import { fromHex, toHex, trainingCommitment } from "../../src/state/hashing.ts";
import { type BlockInput, type BlockResult, StateMachine, type TxInput } from "../../src/state/machine.ts";
import type { LedgerState } from "../../src/state/tables.ts";

/** mulberry32: small, fast and fully determined by its 32-bit seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

interface Actor {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  address: string;
}

export interface SimOptions {
  seed: number;
  blocks: number;
  opsPerBlock: number;
  machine?: StateMachine;
  /** Called after every block with the states before and after. */
  onBlock?: (prev: LedgerState, next: LedgerState, block: BlockInput, result: BlockResult) => void;
}

export interface SimStats {
  txs: number;
  ok: number;
  byCode: Record<string, number>;
  byType: Record<string, number>;
}

export interface SimResult {
  state: LedgerState;
  /** sha256 over every block's state root, in order. */
  rootChain: string;
  stats: SimStats;
}

const CHAIN_ID = "deepshard-sim-1";
const ACCOUNTS = 24;
const VALIDATORS = 8;

export function simGenesis(actors: readonly Actor[]): LedgerState {
  return genesisState(
    createGenesis({
      chainId: CHAIN_ID,
      genesisTime: 1_700_000_000_000,
      genesisWeightsId: sha256Parts([new TextEncoder().encode("genesis weights")]),
      accounts: actors.map((a) => ({ address: a.publicKey, balance: 1_000_000n })),
      validators: actors.slice(0, VALIDATORS).map((a) => ({ address: a.publicKey, bonded: 20_000n })),
      params: {
        maxValidators: 6,
        minValidatorBond: 5_000n,
        unbondingDelay: 12,
        blockRewardHalvingInterval: 200,
        downtime: { window: 20, minSignedBps: 6_000, jailBlocks: 15, slashBps: 100 },
        doubleSign: { slashBps: 500, maxEvidenceAge: 50 },
        data: { votingWindow: 4, quorumBps: 3_000, minStake: 10n },
        training: {
          batchSize: 4,
          commitWindow: 3,
          revealWindow: 3,
          verdictWindow: 3,
          stake: 500n,
          maxTrainers: 6,
        },
        price: { basePrice: 1_000n, doublingValue: 3_000_000n },
      },
    }),
  );
}

export function simActors(seed: number): Actor[] {
  const actors: Actor[] = [];
  for (let i = 0; i < ACCOUNTS; i++) {
    const secret = sha256Parts([new TextEncoder().encode(`sim-${seed}-${i}`)]);
    const kp = keyPairFromSecret(secret);
    actors.push({ publicKey: kp.publicKey, secretKey: kp.secretKey, address: toHex(kp.publicKey) });
  }
  return actors;
}

/** Each kind of operation with its relative frequency. */
const TYPES = (
  [
    ["transfer", 10],
    ["bond", 5],
    ["unbond", 5],
    ["data.submit", 10],
    ["data.vote", 30],
    ["training.commit", 6],
    ["training.reveal", 8],
    ["training.verdict", 12],
    ["weights.buy", 6],
  ] as const
).flatMap(([type, n]) => Array.from({ length: n }, () => type));

export interface SimStep {
  prev: LedgerState;
  block: BlockInput;
  result: BlockResult;
}

/** A simulated chain that can start from any state (a store's, after a crash) and step one block at a time. */
export class Simulation {
  readonly seed: number;
  readonly opsPerBlock: number;
  readonly actors: Actor[];
  state: LedgerState;
  readonly stats: SimStats = { txs: 0, ok: 0, byCode: {}, byType: {} };
  rootChain: Uint8Array = new Uint8Array(32);
  private readonly rng: Rng;
  private readonly machine: StateMachine;
  private readonly byAddress: Map<string, Actor>;
  private readonly secrets = new Map<string, { weightsId: Uint8Array; salt: Uint8Array }>();
  /** Trainers this run makes dishonest: validators reject them. */
  private readonly dishonest = new Set<string>();
  private offline = new Set<string>();

  constructor(options: {
    seed: number;
    opsPerBlock: number;
    machine?: StateMachine | undefined;
    state?: LedgerState;
  }) {
    this.seed = options.seed;
    this.opsPerBlock = options.opsPerBlock;
    this.actors = simActors(options.seed);
    this.byAddress = new Map(this.actors.map((a) => [a.address, a]));
    this.state = options.state ?? simGenesis(this.actors);
    const height = this.state.tables.meta.get("meta")!.height;
    this.rng = new Rng((options.seed ^ Math.imul(height, 0x85ebca6b)) >>> 0);
    this.machine = options.machine ?? new StateMachine();
  }

  step(): SimStep {
    const t = this.state.tables;
    const meta = t.meta.get("meta")!;
    const height = meta.height + 1;
    const nonces = new Map<string, bigint>();
    const nextNonce = (a: Actor): bigint => {
      const n = (nonces.get(a.address) ?? t.accounts.get(a.address)?.nonce ?? 0n) + 1n;
      return n;
    };
    const txs: TxInput[] = [];
    const push = (
      actor: Actor,
      body: DistributiveOmit<TxPayload, "v" | "chainId" | "nonce" | "fee">,
      mutate = 0,
    ): void => {
      // mutate: 0 valid envelope, 1 replayed nonce, 2 wrong chain, 3 fee too low, 4 future nonce
      let nonce = nextNonce(actor);
      if (mutate === 1) nonce -= 1n + BigInt(this.rng.int(3));
      if (mutate === 4) nonce += 1n + BigInt(this.rng.int(3));
      const payload = {
        v: 1,
        chainId: mutate === 2 ? "deepshard-other-1" : CHAIN_ID,
        nonce,
        fee: mutate === 3 ? 0n : 1n + BigInt(this.rng.int(3)),
        ...body,
      } as TxPayload;
      if (mutate === 0) nonces.set(actor.address, nonce);
      const id = new Uint8Array(32);
      new DataView(id.buffer).setUint32(0, this.seed >>> 0);
      new DataView(id.buffer).setUint32(4, height);
      new DataView(id.buffer).setUint32(8, txs.length);
      new DataView(id.buffer).setUint32(28, Math.imul(height * 65_536 + txs.length, 0x9e3779b1) >>> 0);
      txs.push({ tx: { payload, signer: actor.publicKey, signature: ZERO_SIGNATURE }, hash: id });
    };

    if ((height - 1) % 40 === 0) {
      this.offline = new Set();
      if (this.rng.chance(0.6)) this.offline.add(this.rng.pick(meta.validators).address);
    }
    const activeValidators = meta.validators.map((v) => this.byAddress.get(v.address)!);
    const openSubs = [...t.submissions.keys()];
    const roundId = meta.activeRound;
    const round = roundId >= 0 ? t.rounds.get(roundId.toString().padStart(12, "0")) : undefined;
    const weightsIds = [...t.weights.keys()];

    for (let attempt = 0; txs.length < this.opsPerBlock && attempt < this.opsPerBlock * 4; attempt++) {
      const actor = this.rng.pick(this.actors);
      const mutate = this.rng.chance(0.08) ? 1 + this.rng.int(4) : 0;
      const type = this.rng.pick(TYPES);
      const balance = t.accounts.get(actor.address)?.balance ?? 0n;
      switch (type) {
        case "transfer": {
          const amount = this.rng.chance(0.05) ? balance + 1_000_000n : BigInt(1 + this.rng.int(5_000));
          push(
            actor,
            { type, to: this.rng.pick(this.actors).publicKey, amount: this.rng.chance(0.02) ? 0n : amount },
            mutate,
          );
          break;
        }
        case "bond":
          push(
            actor,
            { type, amount: BigInt(1 + this.rng.int(this.rng.chance(0.1) ? 2_000_000 : 6_000)) },
            mutate,
          );
          break;
        case "unbond": {
          const bonded = t.validators.get(actor.address)?.bonded ?? 0n;
          const amount =
            bonded > 0n && this.rng.chance(0.8)
              ? 1n + (bonded * BigInt(this.rng.int(40))) / 100n
              : 1n + BigInt(this.rng.int(100));
          push(actor, { type, amount }, mutate);
          break;
        }
        case "data.submit":
          push(
            actor,
            {
              type,
              contentHash:
                this.rng.chance(0.05) && openSubs.length > 0
                  ? fromHex(t.submissions.get(this.rng.pick(openSubs))!.contentHash)
                  : this.rng.bytes(32),
              size: this.rng.chance(0.02) ? 0 : 1 + this.rng.int(100_000),
              stake: BigInt(this.rng.chance(0.05) ? 1 : 10 + this.rng.int(500)),
            },
            mutate,
          );
          break;
        case "data.vote": {
          if (openSubs.length === 0) break;
          const voter = this.rng.chance(0.85) ? this.rng.pick(activeValidators) : actor;
          const id = this.rng.chance(0.03) ? this.rng.bytes(32) : fromHex(this.rng.pick(openSubs));
          // Each submission has a hidden quality; validators mostly agree on it, some disagree.
          const quality = ((id[30]! << 8) | id[31]!) % 10_001;
          const scores = Object.fromEntries(
            CRITERIA.map((c) => {
              const noise = this.rng.chance(0.2) ? this.rng.int(10_001) : quality + this.rng.int(1_000) - 500;
              return [c, Math.max(0, Math.min(10_000, noise))];
            }),
          ) as Record<(typeof CRITERIA)[number], number>;
          const sub = t.submissions.get(toHex(id));
          const segmentWeights =
            sub && this.rng.chance(0.3)
              ? [{ offset: 0, length: Math.max(1, Math.floor(sub.size / 2)), weight: this.rng.int(10_001) }]
              : undefined;
          push(
            voter,
            { type, submission: id, scores, ...(segmentWeights ? { segmentWeights } : {}) },
            mutate,
          );
          break;
        }
        case "training.commit": {
          const weightsId = this.rng.bytes(32);
          const salt = this.rng.bytes(32);
          const r = round && this.rng.chance(0.9) ? round.id : this.rng.int(5);
          this.secrets.set(`${r}/${actor.address}`, { weightsId, salt });
          if (this.rng.chance(0.3)) this.dishonest.add(`${r}/${actor.address}`);
          push(actor, { type, round: r, commitment: trainingCommitment(weightsId, salt) }, mutate);
          break;
        }
        case "training.reveal": {
          if (!round) break;
          const trainers = Object.keys(round.trainers);
          const trainer =
            trainers.length > 0 && this.rng.chance(0.9)
              ? this.byAddress.get(this.rng.pick(trainers))!
              : actor;
          const secret = this.secrets.get(`${round.id}/${trainer.address}`) ?? {
            weightsId: this.rng.bytes(32),
            salt: this.rng.bytes(32),
          };
          const salt = this.rng.chance(0.1) ? this.rng.bytes(32) : secret.salt;
          push(trainer, { type, round: round.id, weightsId: secret.weightsId, salt }, mutate);
          break;
        }
        case "training.verdict": {
          if (!round) break;
          const revealed = Object.keys(round.trainers)
            .filter((k) => round.trainers[k]!.weightsId !== "")
            .sort();
          if (revealed.length === 0) break;
          const voter = this.rng.chance(0.9) ? this.rng.pick(activeValidators) : actor;
          const chosen = revealed.filter(() => this.rng.chance(0.7));
          if (chosen.length === 0) chosen.push(revealed[0]!);
          const verdicts = chosen.map((k) => ({
            trainer: fromHex(k),
            accept: this.dishonest.has(`${round.id}/${k}`) ? this.rng.chance(0.1) : this.rng.chance(0.95),
            reasons: [],
          }));
          push(voter, { type, round: round.id, verdicts }, mutate);
          break;
        }
        case "weights.buy": {
          const price = meta.price;
          push(
            actor,
            {
              type,
              weightsId: this.rng.chance(0.05) ? this.rng.bytes(32) : fromHex(this.rng.pick(weightsIds)),
              maxPrice: this.rng.chance(0.1) ? price - 1n : price + BigInt(this.rng.int(100)),
            },
            mutate,
          );
          break;
        }
      }
    }
    // Now and then a validator double-signs and anyone reports it (sometimes twice, or forged).
    if (this.rng.chance(0.02) && meta.validators.length > 3) {
      const culprit = this.byAddress.get(this.rng.pick(meta.validators).address)!;
      const reporter = this.rng.pick(this.actors);
      const vh = Math.max(1, height - 1 - this.rng.int(5));
      const vote = (hash: Uint8Array): SignedVoteLike => {
        const payload: Vote = {
          v: 1,
          type: "precommit",
          chainId: CHAIN_ID,
          height: vh,
          round: 0,
          blockHash: hash,
        };
        return {
          payload,
          signer: culprit.publicKey,
          signature: sign(culprit.secretKey, signingBytes(payload)),
        };
      };
      const a = vote(this.rng.bytes(32));
      const bVote = this.rng.chance(0.2) ? a : vote(this.rng.bytes(32));
      push(reporter, { type: "evidence", voteA: a, voteB: bVote });
    }

    const proposer =
      meta.validators.length > 0
        ? meta.validators[height % meta.validators.length]!.address
        : this.actors[0]!.address;
    const signers =
      height === 1
        ? null
        : meta.lastValidators.filter((v) => !this.offline.has(v.address)).map((v) => fromHex(v.address));
    const block: BlockInput = {
      height,
      time: meta.time + 1_000,
      hash: sha256Parts([
        this.rootChain,
        new Uint8Array([height & 255, (height >> 8) & 255, (height >> 16) & 255]),
      ]),
      proposer: fromHex(proposer),
      lastCommitSigners: signers,
      txs,
    };
    const result = this.machine.applyBlock(this.state, block);
    for (let i = 0; i < txs.length; i++) {
      const r = result.txResults[i]!;
      const type = txs[i]!.tx.payload.type;
      this.stats.txs++;
      if (r.code === "OK") this.stats.ok++;
      this.stats.byCode[r.code] = (this.stats.byCode[r.code] ?? 0) + 1;
      this.stats.byType[`${type}:${r.code === "OK" ? "ok" : "fail"}`] =
        (this.stats.byType[`${type}:${r.code === "OK" ? "ok" : "fail"}`] ?? 0) + 1;
    }
    this.rootChain = sha256Parts([this.rootChain, result.state.root]);
    const prev = this.state;
    this.state = result.state;
    return { prev, block, result };
  }
}

const ZERO_SIGNATURE = new Uint8Array(64);

export function runSimulation(options: SimOptions): SimResult {
  const sim = new Simulation(options);
  for (let b = 0; b < options.blocks; b++) {
    const { prev, block, result } = sim.step();
    options.onBlock?.(prev, result.state, block, result);
  }
  return { state: sim.state, rootChain: toHex(sim.rootChain), stats: sim.stats };
}

type SignedVoteLike = Extract<TxPayload, { type: "evidence" }>["voteA"];
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
