import { DeepshardError } from "@deepshard/protocol";

export type ConsensusErrorCode =
  | "INVALID_VALIDATOR_SET"
  | "INVALID_COMMIT"
  | "INVALID_EVIDENCE"
  | "INVALID_BLOCK"
  | "APP_ERROR"
  | "NOT_STARTED";

export class ConsensusError extends DeepshardError<ConsensusErrorCode> {
  override name = "ConsensusError";
}
