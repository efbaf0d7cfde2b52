import { DeepshardError } from "@deepshard/protocol";

/**
 * What can go wrong submitting data:
 * - `NOT_FOUND` / `UNREADABLE`: the path does not exist or cannot be read;
 * - `EMPTY`: nothing but whitespace to submit;
 * - `NOT_TEXT`: a file is not UTF-8 (informants submit plain text or JSONL);
 * - `BAD_JSONL`: a line of a `.jsonl` file is not a JSON object;
 * - `TOO_LARGE`: over the node's limit (the smaller of its own and the chain's `data.maxSize`);
 * - `BAD_STAKE` / `BAD_METADATA`: a stake below the chain's minimum, metadata over 1024 bytes;
 * - `ALREADY_SUBMITTED`: this exact content was submitted before (the ledger refuses it forever);
 * - `TIMEOUT`: `--wait` gave up before the voting window closed.
 */
export type InformantErrorCode =
  | "NOT_FOUND"
  | "UNREADABLE"
  | "EMPTY"
  | "NOT_TEXT"
  | "BAD_JSONL"
  | "TOO_LARGE"
  | "BAD_STAKE"
  | "BAD_METADATA"
  | "ALREADY_SUBMITTED"
  | "TIMEOUT";

export class InformantError extends DeepshardError<InformantErrorCode> {
  override name = "InformantError";
}
