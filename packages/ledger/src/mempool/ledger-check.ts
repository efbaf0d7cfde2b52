/**
 * The mempool's checks on the ledger's committed state, through the state machine's own
 * `checkTx`. A transaction queued behind others of its sender is checked on a view where the
 * sender's nonce has advanced past them and its balance already paid for them (the most they can
 * spend), so a pool never holds more than the sender can pay.
 */
import type { SignedTx } from "@deepshard/protocol";
import { txError } from "../state/errors.ts";
import { toHex } from "../state/hashing.ts";
import { StateMachine } from "../state/machine.ts";
import type { LedgerState } from "../state/tables.ts";
import type { Account } from "../state/types.ts";
import type { MempoolApp } from "./mempool.ts";
import { txInfo } from "./tx-info.ts";

/** The most a transaction can take from its sender's balance. */
export function maxSpend(tx: SignedTx, state: LedgerState): bigint {
  const p = tx.payload;
  switch (p.type) {
    case "transfer":
    case "bond":
      return p.fee + p.amount;
    case "data.submit":
      return p.fee + p.stake;
    case "weights.buy":
      return p.fee + p.maxPrice;
    case "training.commit":
      return p.fee + (state.tables.params.get("params")?.training.stake ?? 0n);
    default:
      return p.fee;
  }
}

/**
 * Σ maxSpend over `ahead`, kept per array: the mempool passes the same growing array of a sender's
 * ready transactions again and again, so each transaction is counted once, not once per check.
 */
const reservations = new WeakMap<readonly SignedTx[], { count: number; sum: bigint; state: LedgerState }>();
function reservedBy(ahead: readonly SignedTx[], state: LedgerState): bigint {
  let r = reservations.get(ahead);
  if (!r || r.state !== state || r.count > ahead.length) r = { count: 0, sum: 0n, state };
  for (; r.count < ahead.length; r.count++) r.sum += maxSpend(ahead[r.count]!, state);
  reservations.set(ahead, r);
  return r.sum;
}

export function ledgerMempoolApp(state: () => LedgerState, machine = new StateMachine()): MempoolApp {
  return {
    committedNonce(sender) {
      return state().tables.accounts.get(toHex(sender))?.nonce ?? 0n;
    },
    checkTx(tx, ahead) {
      const base = state();
      const input = { tx, hash: txInfo(tx).hash };
      if (ahead.length === 0) {
        machine.checkTx(base, input);
        return;
      }
      const address = toHex(tx.signer);
      const account = base.tables.accounts.get(address);
      const reserved = reservedBy(ahead, base);
      const balance = account?.balance ?? 0n;
      if (balance < reserved) {
        throw txError("TX_INSUFFICIENT_FUNDS", `balance ${balance} cannot pay the pooled ${reserved}`);
      }
      const projected: Account = { balance: balance - reserved, nonce: tx.payload.nonce - 1n };
      // A scratch view for the check only: its root is the committed one, never used.
      const view: LedgerState = {
        root: base.root,
        tables: { ...base.tables, accounts: base.tables.accounts.with(new Map([[address, projected]])) },
      };
      machine.checkTx(view, input);
    },
  };
}
