/**
 * The validator set of one height: voting power, stake-weighted quorums and CometBFT's weighted
 * round-robin proposer selection (proposer priorities: each round every validator gains its power,
 * the one with the highest priority proposes and pays the total power back). Over any window of
 * rounds each validator proposes in proportion to its power; everything is integer arithmetic, so
 * every node computes the same proposer.
 */
import { sha256Parts } from "@deepshard/protocol";
import { compareBytes, toHex } from "./encoding.ts";
import { ConsensusError } from "./errors.ts";

export interface ValidatorUpdate {
  publicKey: Uint8Array;
  /** 0 removes the validator. */
  power: bigint;
}

export interface ValidatorEntry {
  readonly publicKey: Uint8Array;
  /** Lower-case hex of the public key. */
  readonly address: string;
  readonly power: bigint;
  readonly priority: bigint;
}

/** Bounds the spread of priorities, as CometBFT does (PriorityWindowSizeFactor). */
const PRIORITY_WINDOW_FACTOR = 2n;
/** At most this many validators (and commit signatures), as in the protocol's commit schema. */
export const MAX_VALIDATORS = 1024;
/** A validator's power fits in 8 bytes for hashing, with room for priority arithmetic. */
export const MAX_POWER = 2n ** 62n;

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

export class ValidatorSet {
  /** Sorted by public key. */
  readonly validators: readonly ValidatorEntry[];
  readonly totalPower: bigint;
  private readonly index: Map<string, ValidatorEntry>;
  private readonly proposers: string[] = [];
  private roundSet: ValidatorSet = this;

  /** The proposer the last increment chose: the proposer of round 0. */
  private readonly chosen: string | undefined;

  private constructor(validators: ValidatorEntry[], chosen?: string) {
    this.validators = validators;
    this.chosen = chosen;
    this.totalPower = validators.reduce((sum, v) => sum + v.power, 0n);
    this.index = new Map(validators.map((v) => [v.address, v]));
  }

  /** A genesis set: priorities start at zero, then one increment picks the first proposer. */
  static create(entries: readonly ValidatorUpdate[]): ValidatorSet {
    const seen = new Set<string>();
    for (const e of entries) {
      if (!(e.publicKey instanceof Uint8Array) || e.publicKey.length !== 32) {
        throw new ConsensusError("INVALID_VALIDATOR_SET", "a validator key must be 32 bytes");
      }
      if (typeof e.power !== "bigint" || e.power <= 0n || e.power > MAX_POWER) {
        throw new ConsensusError(
          "INVALID_VALIDATOR_SET",
          "a validator's power must be a bigint in [1, 2^62]",
          {
            meta: { validator: toHex(e.publicKey) },
          },
        );
      }
      const address = toHex(e.publicKey);
      if (seen.has(address)) {
        throw new ConsensusError("INVALID_VALIDATOR_SET", "a validator appears twice", {
          meta: { validator: address },
        });
      }
      seen.add(address);
    }
    const validators = entries.map((e) => ({
      publicKey: Uint8Array.from(e.publicKey),
      address: toHex(e.publicKey),
      power: e.power,
      priority: 0n,
    }));
    return ValidatorSet.checked(validators).incremented(1);
  }

  private static checked(validators: ValidatorEntry[]): ValidatorSet {
    if (validators.length === 0)
      throw new ConsensusError("INVALID_VALIDATOR_SET", "the validator set is empty");
    if (validators.length > MAX_VALIDATORS) {
      throw new ConsensusError("INVALID_VALIDATOR_SET", `more than ${MAX_VALIDATORS} validators`, {
        meta: { size: validators.length },
      });
    }
    validators.sort((a, b) => compareBytes(a.publicKey, b.publicKey));
    return new ValidatorSet(validators);
  }

  get size(): number {
    return this.validators.length;
  }

  get(address: string): ValidatorEntry | undefined {
    return this.index.get(address);
  }

  /** Voting power of a validator; 0 when it is not in the set. */
  powerOf(address: string): bigint {
    return this.index.get(address)?.power ?? 0n;
  }

  /** Strictly more than 2/3 of the total power: the 2f+1 of the paper. */
  hasQuorum(power: bigint): boolean {
    return 3n * power > 2n * this.totalPower;
  }

  /** Strictly more than 1/3 of the total power: the f+1 of the paper (at least one honest sender). */
  hasOneThird(power: bigint): boolean {
    return 3n * power > this.totalPower;
  }

  /**
   * The proposer of `round` at this height: the set's priorities advanced `round` more times, one
   * step at a time, so the answer never depends on which rounds were asked first.
   */
  proposer(round: number): ValidatorEntry {
    while (this.proposers.length <= round) {
      this.roundSet = this.proposers.length === 0 ? this : this.roundSet.incremented(1);
      this.proposers.push(this.roundSet.chosen!);
    }
    return this.index.get(this.proposers[round]!)!;
  }

  /**
   * The set of the next height: `updates` applied (new validators enter with a priority of
   * −1.125 × total power so they cannot propose at once), then one increment.
   */
  next(updates: readonly ValidatorUpdate[] = []): ValidatorSet {
    if (updates.length === 0) return this.incremented(1);
    const byAddress = new Map(this.validators.map((v) => [v.address, { ...v }]));
    const added: string[] = [];
    for (const u of updates) {
      const address = toHex(u.publicKey);
      if (typeof u.power !== "bigint" || u.power < 0n || u.power > MAX_POWER || u.publicKey.length !== 32) {
        throw new ConsensusError("INVALID_VALIDATOR_SET", "invalid validator update", {
          meta: { validator: address },
        });
      }
      const current = byAddress.get(address);
      if (u.power === 0n) byAddress.delete(address);
      else if (current) byAddress.set(address, { ...current, power: u.power });
      else {
        byAddress.set(address, {
          publicKey: Uint8Array.from(u.publicKey),
          address,
          power: u.power,
          priority: 0n,
        });
        added.push(address);
      }
    }
    const total = [...byAddress.values()].reduce((sum, v) => sum + v.power, 0n);
    for (const address of added) {
      const v = byAddress.get(address);
      if (v) byAddress.set(address, { ...v, priority: -(total + (total >> 3n)) });
    }
    return ValidatorSet.checked([...byAddress.values()]).incremented(1);
  }

  /** sha256 over the sorted (key, power as 8 bytes big-endian) list: what a header or a light client pins. */
  hash(): Uint8Array {
    const parts: Uint8Array[] = [];
    for (const v of this.validators) {
      const power = new Uint8Array(8);
      new DataView(power.buffer).setBigUint64(0, v.power);
      parts.push(v.publicKey, power);
    }
    return sha256Parts(parts);
  }

  /** CometBFT's IncrementProposerPriority: rescale, centre, then `times` rounds of the round robin. */
  private incremented(times: number): ValidatorSet {
    const total = this.totalPower;
    let priorities = this.validators.map((v) => v.priority);
    // Math.max/min do not take bigints.
    let max = priorities[0]!;
    let min = max;
    for (const p of priorities) {
      if (p > max) max = p;
      if (p < min) min = p;
    }
    const window = PRIORITY_WINDOW_FACTOR * total;
    const diff = max - min;
    if (diff > window) {
      const ratio = (diff + window - 1n) / window;
      priorities = priorities.map((p) => p / ratio);
    }
    const avg = floorDiv(
      priorities.reduce((a, b) => a + b, 0n),
      BigInt(priorities.length),
    );
    priorities = priorities.map((p) => p - avg);
    let best = 0;
    for (let t = 0; t < times; t++) {
      best = 0;
      for (let i = 0; i < priorities.length; i++) {
        priorities[i]! += this.validators[i]!.power;
        // Ties go to the smaller key: the list is sorted and `>` keeps the first.
        if (priorities[i]! > priorities[best]!) best = i;
      }
      priorities[best]! -= total;
    }
    const validators = this.validators.map((v, i) => ({ ...v, priority: priorities[i]! }));
    return new ValidatorSet(validators, validators[best]!.address);
  }
}
