import { DeepshardError, type DeepshardErrorOptions } from "@deepshard/protocol";

/** Why a transaction was refused; the code is what clients and the mempool switch on. */
export type TxErrorCode =
  | "TX_MALFORMED"
  | "TX_BAD_SIGNATURE"
  | "TX_WRONG_CHAIN"
  | "TX_BAD_NONCE"
  | "TX_FEE_TOO_LOW"
  | "TX_INSUFFICIENT_FUNDS"
  | "TX_NOT_VALIDATOR"
  | "TX_DUPLICATE"
  | "TX_UNKNOWN_TARGET"
  | "TX_WRONG_PHASE"
  | "TX_COMMITMENT_MISMATCH"
  | "TX_TOMBSTONED"
  | "TX_PRICE_ABOVE_MAX"
  | "TX_LIMIT"
  | "TX_INVALID_EVIDENCE";

export class TxError extends DeepshardError<TxErrorCode> {
  override name = "TxError";
}

/** A broken rule of the state machine itself (never caused by a user's transaction). */
export type StateErrorCode = "STATE_INVARIANT" | "STATE_BAD_BLOCK";

export class StateError extends DeepshardError<StateErrorCode> {
  override name = "StateError";
}

/**
 * A TxError without a stack trace: refusing a transaction is routine (a block may refuse
 * thousands), the code says why, and capturing stacks was a tenth of block execution time.
 */
export function txError(code: TxErrorCode, message: string, options?: DeepshardErrorOptions): TxError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new TxError(code, message, options);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
