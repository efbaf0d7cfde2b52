import { DeepshardError, type DeepshardErrorOptions } from "../errors.ts";

/**
 * What can go wrong between two hosts:
 * - `TIMEOUT`: the deadline passed before the exchange finished;
 * - `ABORTED`: the caller's signal aborted for another reason than a timeout;
 * - `TOO_LARGE`: a request or response is above a size limit (`meta.side` says whose limit);
 * - `REMOTE_ERROR`: the remote handler failed (`meta.remoteCode`, `meta.remoteMessage`);
 * - `PROTOCOL_UNSUPPORTED`: the remote does not speak the protocol;
 * - `DIAL_FAILED`: no connection could be made (refused, unreachable, gated);
 * - `STREAM_FAILED`: the stream was reset, ended early, or carried a malformed frame;
 * - `PUBLISH_FAILED`: gossipsub refused to publish;
 * - `START_FAILED`: the host could not start (e.g. a listen address is taken);
 * - `NOT_RUNNING`: the host is stopped;
 * - `INVALID_ARGUMENT`: the caller passed something unusable (a bad topic, a second subscription).
 */
export type HostErrorCode =
  | "TIMEOUT"
  | "ABORTED"
  | "TOO_LARGE"
  | "REMOTE_ERROR"
  | "PROTOCOL_UNSUPPORTED"
  | "DIAL_FAILED"
  | "STREAM_FAILED"
  | "PUBLISH_FAILED"
  | "START_FAILED"
  | "NOT_RUNNING"
  | "INVALID_ARGUMENT";

export class HostError extends DeepshardError<HostErrorCode> {
  override name = "HostError";

  constructor(code: HostErrorCode, shortMessage: string, options: DeepshardErrorOptions = {}) {
    super(code, shortMessage, options);
  }
}

/** Turns the reason of an aborted signal into TIMEOUT (deadline) or ABORTED (anything else). */
export function abortError(signal: AbortSignal, what: string): HostError {
  const reason: unknown = signal.reason;
  if (reason instanceof HostError) return reason;
  const timedOut = reason instanceof Error && reason.name === "TimeoutError";
  return timedOut
    ? new HostError("TIMEOUT", `${what} timed out`, { cause: reason })
    : new HostError("ABORTED", `${what} was aborted`, { cause: reason });
}
