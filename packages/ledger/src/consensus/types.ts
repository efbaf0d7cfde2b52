/**
 * The values consensus signs and exchanges. Their shapes match the protocol's message schemas
 * (`Signed<P>` envelopes, prevote/precommit/proposal payloads, commits), so the engine's objects
 * encode with the protocol codec as they are; the engine itself never encodes anything; it calls
 * the injected `ConsensusCrypto`.
 */

export type VoteType = "prevote" | "precommit";

export interface VotePayload {
  v: 1;
  type: VoteType;
  chainId: string;
  height: number;
  round: number;
  /** null is a vote for nil. */
  blockHash: Uint8Array | null;
}

export interface ProposalPayload {
  v: 1;
  type: "proposal";
  chainId: string;
  height: number;
  round: number;
  /** The round of the proof-of-lock the proposer re-proposes from (the paper's validRound), or -1. */
  polRound: number;
  blockHash: Uint8Array;
}

export interface Signed<P> {
  payload: P;
  /** The ed25519 public key of the signer. */
  signer: Uint8Array;
  signature: Uint8Array;
}

export type SignedVote = Signed<VotePayload>;
export type SignedProposal = Signed<ProposalPayload>;

/** A proposal travels with the value (block) it proposes. */
export interface ProposalMessage<V> {
  v: 1;
  type: "proposal";
  proposal: SignedProposal;
  block: V;
}

export interface VoteMessage {
  v: 1;
  type: "vote";
  vote: SignedVote;
}

export type ConsensusMessage<V> = ProposalMessage<V> | VoteMessage;

export interface CommitSignature {
  validator: Uint8Array;
  signature: Uint8Array;
}

/**
 * Precommits of more than 2/3 of the voting power for `blockHash` at (height, round). Each
 * signature signed the precommit payload rebuilt by `commitPrecommit`; sorted by validator key.
 */
export interface Commit {
  v: 1;
  height: number;
  round: number;
  blockHash: Uint8Array;
  signatures: CommitSignature[];
}

/** Two different signed votes by one validator for the same height, round and type. */
export interface DuplicateVoteEvidence {
  voteA: SignedVote;
  voteB: SignedVote;
}

/** Signature primitives consensus needs, injected so the engine stays independent of the wire format. */
export interface ConsensusCrypto {
  /** The bytes a signature over `payload` covers (domain-separated by type and chain id). */
  signingBytes(payload: VotePayload | ProposalPayload): Uint8Array;
  /** The network's one strict ed25519 check (argument order of protocol's `verify`). */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/** The local validator's key. */
export interface ConsensusSigner {
  publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** The precommit payload every signature of `commit` signed. */
export function commitPrecommit(
  chainId: string,
  commit: { height: number; round: number; blockHash: Uint8Array },
): VotePayload {
  return {
    v: 1,
    type: "precommit",
    chainId,
    height: commit.height,
    round: commit.round,
    blockHash: commit.blockHash,
  };
}
