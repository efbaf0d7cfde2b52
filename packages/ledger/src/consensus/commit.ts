/**
 * Checks a node runs on what others decided: a commit (more than 2/3 of the power signed precommits
 * for the block hash) before applying a synced block, and duplicate-vote evidence before punishing.
 */
import { equalBytes, toHex } from "./encoding.ts";
import { ConsensusError } from "./errors.ts";
import { type Commit, type ConsensusCrypto, commitPrecommit, type DuplicateVoteEvidence } from "./types.ts";
import type { ValidatorSet } from "./validators.ts";

export interface VerifyCommitOptions {
  chainId: string;
  validators: ValidatorSet;
  crypto: ConsensusCrypto;
  /** The hash the commit must be for. */
  blockHash: Uint8Array;
  /** The height the commit must be for. */
  height: number;
}

/**
 * Throws a ConsensusError (INVALID_COMMIT) unless `commit` carries valid precommit signatures of
 * distinct validators of `validators` holding strictly more than 2/3 of the power for `blockHash`.
 * Returns the power that signed.
 */
export function verifyCommit(commit: Commit, options: VerifyCommitOptions): bigint {
  const { validators, crypto } = options;
  const fail = (message: string, meta: Record<string, unknown> = {}): never => {
    throw new ConsensusError("INVALID_COMMIT", message, { meta: { height: options.height, ...meta } });
  };
  if (commit.height !== options.height)
    fail("the commit is for another height", { commitHeight: commit.height });
  if (!equalBytes(commit.blockHash, options.blockHash)) fail("the commit is for another block");
  if (!Array.isArray(commit.signatures) || commit.signatures.length > validators.size) {
    fail("the commit has more signatures than there are validators");
  }
  let bytes: Uint8Array;
  try {
    bytes = crypto.signingBytes(commitPrecommit(options.chainId, commit));
  } catch (cause) {
    throw new ConsensusError("INVALID_COMMIT", "the commit is malformed", {
      cause,
      meta: { height: options.height },
    });
  }
  const seen = new Set<string>();
  let power = 0n;
  for (const { validator, signature } of commit.signatures) {
    const address = toHex(validator);
    const weight = validators.powerOf(address);
    if (weight === 0n) fail("a commit signature is from a non-validator", { validator: address });
    if (seen.has(address)) fail("a validator signed the commit twice", { validator: address });
    seen.add(address);
    if (!crypto.verify(signature, bytes, validator))
      fail("a commit signature is invalid", { validator: address });
    power += weight;
  }
  if (!validators.hasQuorum(power)) {
    fail("the commit's signers hold no more than 2/3 of the voting power", {
      signed: power.toString(),
      total: validators.totalPower.toString(),
    });
  }
  return power;
}

/**
 * Throws a ConsensusError (INVALID_EVIDENCE) unless the two votes are by the same validator of
 * `validators`, for the same chain, height, round and type, for different values, both validly
 * signed. Returns the offending validator's public key.
 */
export function verifyEvidence(
  evidence: DuplicateVoteEvidence,
  options: { chainId: string; validators: ValidatorSet; crypto: ConsensusCrypto },
): Uint8Array {
  const { voteA, voteB } = evidence;
  const a = voteA.payload;
  const b = voteB.payload;
  const fail = (message: string): never => {
    throw new ConsensusError("INVALID_EVIDENCE", message, { meta: { height: a.height, round: a.round } });
  };
  if (!equalBytes(voteA.signer, voteB.signer)) fail("the votes are from different validators");
  if (a.chainId !== options.chainId || b.chainId !== options.chainId) fail("a vote is for another chain");
  if (a.type !== b.type || a.height !== b.height || a.round !== b.round) {
    fail("the votes are for different heights, rounds or types");
  }
  if (equalBytes(a.blockHash, b.blockHash)) fail("the votes are for the same value");
  if (options.validators.powerOf(toHex(voteA.signer)) === 0n) fail("the signer is not a validator");
  for (const vote of [voteA, voteB]) {
    let ok = false;
    try {
      ok = options.crypto.verify(vote.signature, options.crypto.signingBytes(vote.payload), vote.signer);
    } catch {
      // A payload the codec refuses cannot carry a valid signature.
    }
    if (!ok) fail("a vote's signature is invalid");
  }
  return voteA.signer;
}
