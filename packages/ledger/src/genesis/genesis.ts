/**
 * The genesis file: every parameter of a chain and its initial allocations, as JSON in which
 * amounts are decimal strings (JSON numbers cannot hold bigints) and accounts are `ds1…`
 * addresses. `createGenesis` makes a new one, `parseGenesis` / `loadGenesis` validate one with
 * an error that names the offending field, and `genesisState` turns it into the state at height 0.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { CRITERIA, DeepshardError, encodeAddress, isAddress, parseAddress } from "@deepshard/protocol";
import { BPS } from "../state/aggregate.ts";
import { priceAt } from "../state/fixedpoint.ts";
import { fromHex, toHex } from "../state/hashing.ts";
import { computeValidatorSet } from "../state/machine.ts";
import { defaultParams, type Params } from "../state/params.ts";
import { type LedgerState, stateFromTables, WorkingState } from "../state/tables.ts";
import type { Account, Meta, Validator, WeightsRecord } from "../state/types.ts";

export type GenesisErrorCode = "GENESIS_INVALID" | "GENESIS_READ_FAILED";

export class GenesisError extends DeepshardError<GenesisErrorCode> {
  override name = "GenesisError";
}

export interface GenesisAccount {
  /** 32-byte ed25519 public key. */
  address: Uint8Array;
  balance: bigint;
}

export interface GenesisValidator {
  address: Uint8Array;
  /** Bonded at genesis (counted in the genesis supply, not taken from a balance). */
  bonded: bigint;
}

export interface Genesis {
  chainId: string;
  /** Milliseconds since the Unix epoch. */
  genesisTime: number;
  genesisWeightsId: Uint8Array;
  accounts: GenesisAccount[];
  validators: GenesisValidator[];
  params: Params;
}

export interface CreateGenesisOptions {
  chainId?: string;
  genesisTime?: number;
  /** The weights id of the model the chain starts from; 32 zero bytes when omitted. */
  genesisWeightsId?: Uint8Array;
  accounts?: { address: Uint8Array; balance: bigint }[];
  validators?: { address: Uint8Array; bonded: bigint; balance?: bigint }[];
  /** Overrides of the default parameters, section by section. */
  params?: ParamsOverrides;
}

export type ParamsOverrides = Partial<
  Omit<Params, "downtime" | "doubleSign" | "data" | "training" | "price">
> & {
  downtime?: Partial<Params["downtime"]>;
  doubleSign?: Partial<Params["doubleSign"]>;
  data?: Partial<Params["data"]>;
  training?: Partial<Params["training"]>;
  price?: Partial<Params["price"]>;
};

export function mergeParams(overrides: ParamsOverrides = {}): Params {
  const d = defaultParams();
  return {
    ...d,
    ...overrides,
    downtime: { ...d.downtime, ...overrides.downtime },
    doubleSign: { ...d.doubleSign, ...overrides.doubleSign },
    data: { ...d.data, ...overrides.data },
    training: { ...d.training, ...overrides.training },
    price: { ...d.price, ...overrides.price },
  };
}

/** A new, validated genesis: the defaults with `options` applied. */
export function createGenesis(options: CreateGenesisOptions = {}): Genesis {
  const accounts = new Map<string, bigint>();
  for (const a of options.accounts ?? [])
    accounts.set(toHex(a.address), (accounts.get(toHex(a.address)) ?? 0n) + a.balance);
  for (const v of options.validators ?? []) {
    if (v.balance !== undefined)
      accounts.set(toHex(v.address), (accounts.get(toHex(v.address)) ?? 0n) + v.balance);
  }
  const genesis: Genesis = {
    chainId: options.chainId ?? "deepshard-devnet-1",
    genesisTime: options.genesisTime ?? 0,
    genesisWeightsId: options.genesisWeightsId ?? new Uint8Array(32),
    accounts: [...accounts]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([a, balance]) => ({ address: fromHex(a), balance })),
    validators: (options.validators ?? []).map((v) => ({ address: v.address, bonded: v.bonded })),
    params: mergeParams(options.params),
  };
  return parseGenesis(genesisToJson(genesis));
}

/** The JSON form: bigints as decimal strings, keys as `ds1…` addresses, ids as hex. */
export function genesisToJson(g: Genesis): unknown {
  return JSON.parse(
    JSON.stringify(
      {
        chainId: g.chainId,
        genesisTime: g.genesisTime,
        genesisWeightsId: toHex(g.genesisWeightsId),
        accounts: g.accounts.map((a) => ({ address: encodeAddress(a.address), balance: a.balance })),
        validators: g.validators.map((v) => ({ address: encodeAddress(v.address), bonded: v.bonded })),
        params: g.params,
      },
      (_key, value) => (typeof value === "bigint" ? value.toString() : value),
    ),
  );
}

export function genesisToString(g: Genesis): string {
  return `${JSON.stringify(genesisToJson(g), null, 2)}\n`;
}

/** Writes atomically (temporary file, then rename). */
export async function writeGenesis(path: string, g: Genesis): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, genesisToString(g));
  await rename(tmp, path);
}

export async function loadGenesis(path: string): Promise<Genesis> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new GenesisError("GENESIS_READ_FAILED", `cannot read the genesis file ${path}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new GenesisError("GENESIS_INVALID", `the genesis file ${path} is not valid JSON`, { cause });
  }
  return parseGenesis(json);
}

function invalid(path: string, expected: string, got: unknown): GenesisError {
  const shown =
    typeof got === "string" ? JSON.stringify(got.slice(0, 80)) : (JSON.stringify(got) ?? String(got));
  return new GenesisError("GENESIS_INVALID", `genesis: ${path} must be ${expected}`, {
    details: `got ${shown}`,
    meta: { path },
  });
}

function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalid(path, "an object", v);
  return v as Record<string, unknown>;
}

function known(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(o))
    if (!keys.includes(k)) throw invalid(`${path}.${k}`, "absent (unknown field)", o[k]);
}

function int(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw invalid(path, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}

function amount(v: unknown, path: string, min = 0n): bigint {
  if (typeof v !== "string" || !/^(0|[1-9][0-9]{0,30})$/.test(v))
    throw invalid(path, "a decimal string amount", v);
  const n = BigInt(v);
  if (n < min) throw invalid(path, `at least ${min}`, v);
  return n;
}

function hash32(v: unknown, path: string): Uint8Array {
  if (typeof v !== "string" || !/^[0-9a-f]{64}$/.test(v)) throw invalid(path, "64 lower-case hex digits", v);
  return fromHex(v);
}

function address(v: unknown, path: string): Uint8Array {
  if (typeof v !== "string" || !isAddress(v)) throw invalid(path, "a ds1… address", v);
  return parseAddress(v);
}

function section<T>(
  o: Record<string, unknown>,
  key: string,
  path: string,
  fn: (s: Record<string, unknown>, p: string) => T,
): T {
  return fn(obj(o[key], `${path}.${key}`), `${path}.${key}`);
}

function parseParams(o: Record<string, unknown>, p: string): Params {
  known(
    o,
    [
      "maxValidators",
      "minValidatorBond",
      "unbondingDelay",
      "minFee",
      "blockReward",
      "blockRewardHalvingInterval",
      "maxTxsPerBlock",
      "downtime",
      "doubleSign",
      "data",
      "training",
      "price",
    ],
    p,
  );
  const params: Params = {
    maxValidators: int(o.maxValidators, `${p}.maxValidators`, 1, 10_000),
    minValidatorBond: amount(o.minValidatorBond, `${p}.minValidatorBond`, 1n),
    unbondingDelay: int(o.unbondingDelay, `${p}.unbondingDelay`, 1),
    minFee: amount(o.minFee, `${p}.minFee`),
    blockReward: amount(o.blockReward, `${p}.blockReward`),
    blockRewardHalvingInterval: int(o.blockRewardHalvingInterval, `${p}.blockRewardHalvingInterval`, 0),
    maxTxsPerBlock: int(o.maxTxsPerBlock, `${p}.maxTxsPerBlock`, 1),
    downtime: section(o, "downtime", p, (s, q) => {
      known(s, ["window", "minSignedBps", "jailBlocks", "slashBps"], q);
      return {
        window: int(s.window, `${q}.window`, 1),
        minSignedBps: int(s.minSignedBps, `${q}.minSignedBps`, 0, BPS),
        jailBlocks: int(s.jailBlocks, `${q}.jailBlocks`, 1),
        slashBps: int(s.slashBps, `${q}.slashBps`, 0, BPS),
      };
    }),
    doubleSign: section(o, "doubleSign", p, (s, q) => {
      known(s, ["slashBps", "maxEvidenceAge"], q);
      return {
        slashBps: int(s.slashBps, `${q}.slashBps`, 0, BPS),
        maxEvidenceAge: int(s.maxEvidenceAge, `${q}.maxEvidenceAge`, 1),
      };
    }),
    data: section(o, "data", p, (s, q) => {
      known(
        s,
        [
          "minStake",
          "maxSize",
          "votingWindow",
          "quorumBps",
          "criteriaWeightsBps",
          "baseThresholdBps",
          "disagreementFactorBps",
          "rewardAtFullValue",
        ],
        q,
      );
      const weights = s.criteriaWeightsBps;
      if (!Array.isArray(weights) || weights.length !== CRITERIA.length) {
        throw invalid(
          `${q}.criteriaWeightsBps`,
          `${CRITERIA.length} basis-point weights (${CRITERIA.join(", ")})`,
          weights,
        );
      }
      const criteriaWeightsBps = weights.map((w, i) => int(w, `${q}.criteriaWeightsBps[${i}]`, 0, BPS));
      if (criteriaWeightsBps.reduce((a, b) => a + b, 0) !== BPS) {
        throw invalid(`${q}.criteriaWeightsBps`, `weights summing to ${BPS}`, weights);
      }
      return {
        minStake: amount(s.minStake, `${q}.minStake`, 1n),
        maxSize: int(s.maxSize, `${q}.maxSize`, 1),
        votingWindow: int(s.votingWindow, `${q}.votingWindow`, 1),
        quorumBps: int(s.quorumBps, `${q}.quorumBps`, 0, BPS),
        criteriaWeightsBps,
        baseThresholdBps: int(s.baseThresholdBps, `${q}.baseThresholdBps`, 1, BPS),
        disagreementFactorBps: int(s.disagreementFactorBps, `${q}.disagreementFactorBps`, 0, 1_000_000),
        rewardAtFullValue: amount(s.rewardAtFullValue, `${q}.rewardAtFullValue`),
      };
    }),
    training: section(o, "training", p, (s, q) => {
      known(
        s,
        [
          "batchSize",
          "commitWindow",
          "revealWindow",
          "verdictWindow",
          "stake",
          "maxTrainers",
          "roundMint",
          "roundValue",
          "hyperParameters",
        ],
        q,
      );
      const hyper = obj(s.hyperParameters, `${q}.hyperParameters`);
      const hyperParameters: Record<string, string | number> = {};
      for (const key of Object.keys(hyper).sort()) {
        const v = hyper[key];
        if (typeof v === "string") hyperParameters[key] = v;
        else hyperParameters[key] = int(v, `${q}.hyperParameters.${key}`, 0);
      }
      return {
        batchSize: int(s.batchSize, `${q}.batchSize`, 1, 4096),
        commitWindow: int(s.commitWindow, `${q}.commitWindow`, 1),
        revealWindow: int(s.revealWindow, `${q}.revealWindow`, 1),
        verdictWindow: int(s.verdictWindow, `${q}.verdictWindow`, 1),
        stake: amount(s.stake, `${q}.stake`, 1n),
        maxTrainers: int(s.maxTrainers, `${q}.maxTrainers`, 1, 1024),
        roundMint: amount(s.roundMint, `${q}.roundMint`),
        roundValue: amount(s.roundValue, `${q}.roundValue`),
        hyperParameters,
      };
    }),
    price: section(o, "price", p, (s, q) => {
      known(s, ["basePrice", "doublingValue"], q);
      return {
        basePrice: amount(s.basePrice, `${q}.basePrice`, 1n),
        doublingValue: amount(s.doublingValue, `${q}.doublingValue`, 1n),
      };
    }),
  };
  return params;
}

/** Validates a parsed genesis JSON value. */
export function parseGenesis(json: unknown): Genesis {
  const o = obj(json, "genesis");
  known(o, ["chainId", "genesisTime", "genesisWeightsId", "accounts", "validators", "params"], "genesis");
  if (typeof o.chainId !== "string" || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(o.chainId)) {
    throw invalid("chainId", "1–64 of a-z 0-9 . _ - (starting with a letter or digit)", o.chainId);
  }
  const list = (key: string): unknown[] => {
    const v = o[key];
    if (!Array.isArray(v)) throw invalid(key, "an array", v);
    return v;
  };
  const seen = new Set<string>();
  const accounts = list("accounts").map((a, i) => {
    const e = obj(a, `accounts[${i}]`);
    known(e, ["address", "balance"], `accounts[${i}]`);
    const addr = address(e.address, `accounts[${i}].address`);
    if (seen.has(toHex(addr))) throw invalid(`accounts[${i}].address`, "listed once", e.address);
    seen.add(toHex(addr));
    return { address: addr, balance: amount(e.balance, `accounts[${i}].balance`) };
  });
  const params = section(o, "params", "genesis", (s) => parseParams(s, "params"));
  const seenValidators = new Set<string>();
  const validators = list("validators").map((a, i) => {
    const e = obj(a, `validators[${i}]`);
    known(e, ["address", "bonded"], `validators[${i}]`);
    const addr = address(e.address, `validators[${i}].address`);
    if (seenValidators.has(toHex(addr))) throw invalid(`validators[${i}].address`, "listed once", e.address);
    seenValidators.add(toHex(addr));
    return { address: addr, bonded: amount(e.bonded, `validators[${i}].bonded`, params.minValidatorBond) };
  });
  if (validators.length === 0) throw invalid("validators", "a non-empty list", []);
  return {
    chainId: o.chainId,
    genesisTime: int(o.genesisTime, "genesisTime", 0),
    genesisWeightsId: hash32(o.genesisWeightsId, "genesisWeightsId"),
    accounts,
    validators,
    params,
  };
}

/** The state at height 0. */
export function genesisState(g: Genesis): LedgerState {
  const accounts = new Map<string, Account>();
  let supply = 0n;
  for (const a of g.accounts) {
    accounts.set(toHex(a.address), { balance: a.balance, nonce: 0n });
    supply += a.balance;
  }
  const validators = new Map<string, Validator>();
  for (const v of g.validators) {
    validators.set(toHex(v.address), { bonded: v.bonded, jailedUntil: 0, tombstoned: false, missed: 0 });
    supply += v.bonded;
  }
  const weightsId = toHex(g.genesisWeightsId);
  const weights = new Map<string, WeightsRecord>([
    [weightsId, { index: 0, weightsId, round: -1, height: 0 }],
  ]);
  const base = stateFromTables({ accounts, validators, weights, params: new Map([["params", g.params]]) });
  const set = computeValidatorSet(new WorkingState(base), g.params, 1);
  const meta: Meta = {
    chainId: g.chainId,
    height: 0,
    time: g.genesisTime,
    lastBlockHash: toHex(new Uint8Array(32)),
    genesisSupply: supply,
    minted: 0n,
    burned: 0n,
    accumulatedValue: 0n,
    price: priceAt(g.params.price.basePrice, 0n, g.params.price.doublingValue),
    nextUnbondingSeq: 0,
    nextQueueSeq: 0,
    nextRoundId: 0,
    activeRound: -1,
    canonicalWeightsId: weightsId,
    weightsCount: 1,
    validators: set,
    lastValidators: set,
  };
  return stateFromTables({
    meta: new Map([["meta", meta]]),
    params: new Map([["params", g.params]]),
    accounts,
    validators,
    weights,
  });
}
