import { DeepshardError } from "@deepshard/protocol";

export type ValidatorErrorCode =
  | "INPUT_INVALID"
  | "MODEL_MISMATCH"
  | "TOO_FEW_REFERENCES"
  | "TRANSCRIPT_INVALID";

export class ValidatorError extends DeepshardError<ValidatorErrorCode> {
  override name = "ValidatorError";
}
