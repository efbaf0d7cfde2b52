/**
 * Checks a node can run at every height: the supply equation and the rules no block may break.
 * Each returns normally or throws a StateError naming the broken rule.
 */
import { StateError } from "./errors.ts";
import type { LedgerState } from "./tables.ts";

export interface SupplyBreakdown {
  genesis: bigint;
  minted: bigint;
  burned: bigint;
  balances: bigint;
  bonded: bigint;
  unbonding: bigint;
  /** Data submissions' stakes and the active round's trainers' stakes. */
  escrowed: bigint;
}

export function supplyBreakdown(state: LedgerState): SupplyBreakdown {
  const t = state.tables;
  const meta = t.meta.get("meta")!;
  let balances = 0n;
  for (const a of t.accounts.values()) balances += a.balance;
  let bonded = 0n;
  for (const v of t.validators.values()) bonded += v.bonded;
  let unbonding = 0n;
  for (const u of t.unbonding.values()) unbonding += u.amount;
  let escrowed = 0n;
  for (const s of t.submissions.values()) escrowed += s.stake;
  if (meta.activeRound >= 0) {
    const round = t.rounds.get(meta.activeRound.toString().padStart(12, "0"));
    for (const tr of Object.values(round?.trainers ?? {})) escrowed += tr.stake;
  }
  return {
    genesis: meta.genesisSupply,
    minted: meta.minted,
    burned: meta.burned,
    balances,
    bonded,
    unbonding,
    escrowed,
  };
}

/** genesis + minted − burned = balances + bonded + unbonding + escrowed. */
export function checkSupply(state: LedgerState): SupplyBreakdown {
  const s = supplyBreakdown(state);
  const expected = s.genesis + s.minted - s.burned;
  const actual = s.balances + s.bonded + s.unbonding + s.escrowed;
  if (expected !== actual) {
    throw new StateError("STATE_INVARIANT", "supply does not add up", {
      details: `genesis ${s.genesis} + minted ${s.minted} − burned ${s.burned} = ${expected}, but balances ${s.balances} + bonded ${s.bonded} + unbonding ${s.unbonding} + escrowed ${s.escrowed} = ${actual}`,
      meta: { ...s, expected, actual },
    });
  }
  return s;
}

function fail(rule: string, details: string): never {
  throw new StateError("STATE_INVARIANT", rule, { details });
}

/**
 * Every rule of one state, and of the step from `prev` when given: supply; no negative amount;
 * escrow consistent with open submissions; nonces and the price never go down; the validator set
 * holds no jailed, tombstoned or under-bonded validator and matches the bonds.
 */
export function checkInvariants(state: LedgerState, prev?: LedgerState): void {
  checkSupply(state);
  const t = state.tables;
  const meta = t.meta.get("meta")!;
  const params = t.params.get("params")!;
  for (const [k, a] of t.accounts) {
    if (a.balance < 0n) fail("negative balance", k);
    if (a.nonce < 0n) fail("negative nonce", k);
    const before = prev?.tables.accounts.get(k);
    if (before && a.nonce < before.nonce) fail("nonce went down", k);
  }
  if (prev) {
    for (const k of prev.tables.accounts.keys()) if (!t.accounts.has(k)) fail("account disappeared", k);
    const prevMeta = prev.tables.meta.get("meta")!;
    if (meta.price < prevMeta.price) fail("price fell", `${prevMeta.price} → ${meta.price}`);
    if (meta.minted < prevMeta.minted || meta.burned < prevMeta.burned)
      fail("minted or burned went down", "");
    if (meta.height !== prevMeta.height + 1)
      fail("height did not advance by one", `${prevMeta.height} → ${meta.height}`);
  }
  for (const [k, v] of t.validators) if (v.bonded < 0n) fail("negative bond", k);
  for (const [k, u] of t.unbonding) if (u.amount < 0n) fail("negative unbonding", k);
  let open = 0;
  for (const [id, s] of t.submissions) {
    if (s.stake <= 0n) fail("submission without stake", id);
    if (t.data.get(s.contentHash)?.status !== "open") fail("open submission without an open data record", id);
    if (s.closesAt < meta.height) fail("submission past its window", id);
    open++;
  }
  let openRecords = 0;
  for (const d of t.data.values()) if (d.status === "open") openRecords++;
  if (open !== openRecords)
    fail("escrow records disagree", `${open} submissions, ${openRecords} open records`);
  if (meta.validators.length > params.maxValidators) fail("too many validators", `${meta.validators.length}`);
  for (const { address, power } of meta.validators) {
    const v = t.validators.get(address);
    if (!v) fail("validator in the set without a bond", address);
    if (v.tombstoned) fail("tombstoned validator has power", address);
    if (v.jailedUntil > meta.height + 1) fail("jailed validator has power", address);
    if (power !== v.bonded || power < params.minValidatorBond)
      fail("validator power differs from its bond", address);
  }
  if (
    meta.activeRound >= 0 &&
    t.rounds.get(meta.activeRound.toString().padStart(12, "0"))?.status !== "open"
  ) {
    fail("the active round is not open", `${meta.activeRound}`);
  }
}
