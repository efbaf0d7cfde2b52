/**
 * Signed consensus payloads (Tendermint, arXiv 1807.04938): a proposer's proposal and the
 * validators' prevotes and precommits for a block hash, or for nil.
 */
import { type Infer, int, literal, nullable, struct, union, versioned } from "../schema.ts";
import { chainId, hash32, height, round, type Signed, signed, v } from "./common.ts";

export const proposalPayloadSchema = struct({
  v,
  type: literal("proposal"),
  chainId,
  height,
  round,
  /** The round of the proof-of-lock the proposer re-proposes from, or -1. */
  polRound: int({ min: -1, max: Number.MAX_SAFE_INTEGER }),
  blockHash: hash32,
});

const voteFields = { v, chainId, height, round, /** null is a vote for nil. */ blockHash: nullable(hash32) };
export const prevotePayloadSchema = struct({ ...voteFields, type: literal("prevote") });
export const precommitPayloadSchema = struct({ ...voteFields, type: literal("precommit") });
export const votePayloadSchema = versioned(v, union("type", [prevotePayloadSchema, precommitPayloadSchema]));

export type Proposal = Infer<typeof proposalPayloadSchema>;
export type Prevote = Infer<typeof prevotePayloadSchema>;
export type Precommit = Infer<typeof precommitPayloadSchema>;
export type Vote = Prevote | Precommit;
export type SignedProposal = Signed<Proposal>;
export type SignedVote = Signed<Vote>;

export const signedProposalSchema = signed(versioned(v, proposalPayloadSchema));
export const signedVoteSchema = signed(votePayloadSchema);
