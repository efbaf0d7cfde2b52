/** Hashes the state machine defines on top of protocol's: trainers' commitments and hex keys. */
import { sha256Parts } from "@deepshard/protocol";

/** What a trainer commits to before the deadline: sha256(weightsId ‖ salt). */
export function trainingCommitment(weightsId: Uint8Array, salt: Uint8Array): Uint8Array {
  return sha256Parts([weightsId, salt]);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, "hex"));
}
