/** Blocks, their headers and commits, and the consensus messages that carry them. */
import { array, type Infer, literal, nullable, struct, uint, union, versioned } from "../schema.ts";
import {
  chainId,
  defineMessage,
  hash32,
  hashOf,
  publicKey,
  round,
  signature,
  sortedBy,
  v,
} from "./common.ts";
import { signedTxSchema } from "./tx.ts";
import { signedProposalSchema, signedVoteSchema } from "./votes.ts";

export const headerSchema = struct({
  v,
  chainId,
  height: uint({ min: 1 }),
  /** Milliseconds since the Unix epoch, as the proposer saw it. */
  time: uint(),
  /** Hash of the previous block's header; 32 zero bytes at height 1. */
  prevHash: hash32,
  /** Merkle root of the hashes of the block's transactions. */
  txRoot: hash32,
  /** The state root after the previous block (as in Tendermint). */
  appHash: hash32,
  proposer: publicKey,
  /** Hash of `lastCommit`'s encoding; 32 zero bytes at height 1. */
  lastCommitHash: hash32,
});

export const MAX_COMMIT_SIGNATURES = 1024;
export const commitSignatureSchema = struct({ validator: publicKey, signature });
/** Precommits of more than 2/3 of the stake for `blockHash`; each signed `commitPrecommit(...)`. */
export const commitSchema = struct({
  v,
  height: uint({ min: 1 }),
  round,
  blockHash: hash32,
  signatures: sortedBy(commitSignatureSchema, (s) => s.validator, MAX_COMMIT_SIGNATURES, "validator"),
});

export const MAX_BLOCK_TXS = 10_000;
export const MAX_BLOCK_BYTES = 4 * 1024 * 1024;
export const blockSchema = struct({
  v,
  header: headerSchema,
  txs: array(signedTxSchema, { max: MAX_BLOCK_TXS }),
  /** The commit of the previous block; null at height 1. */
  lastCommit: nullable(commitSchema),
});

export type Header = Infer<typeof headerSchema>;
export type CommitSignature = Infer<typeof commitSignatureSchema>;
export type Commit = Infer<typeof commitSchema>;
export type Block = Infer<typeof blockSchema>;

export const MAX_HEADER_BYTES = 1024;
export const MAX_COMMIT_BYTES = 128 * 1024;
export const headerCodec = defineMessage<Header>("header", headerSchema, MAX_HEADER_BYTES);
export const commitCodec = defineMessage<Commit>("commit", commitSchema, MAX_COMMIT_BYTES);
export const blockCodec = defineMessage<Block>("block", blockSchema, MAX_BLOCK_BYTES);

export const encodeHeader = (h: Header): Uint8Array => headerCodec.encode(h);
export const decodeHeader = (bytes: Uint8Array): Header => headerCodec.decode(bytes);
export const encodeCommit = (c: Commit): Uint8Array => commitCodec.encode(c);
export const decodeCommit = (bytes: Uint8Array): Commit => commitCodec.decode(bytes);
export const encodeBlock = (b: Block): Uint8Array => blockCodec.encode(b);
export const decodeBlock = (bytes: Uint8Array): Block => blockCodec.decode(bytes);
/** The block hash: sha256 of the header's canonical bytes (the header commits to the rest). */
export const headerHash = (h: Header): Uint8Array => hashOf(headerCodec, h);
export const blockHash = (b: Block): Uint8Array => headerHash(b.header);
export const commitHash = (c: Commit): Uint8Array => hashOf(commitCodec, c);

/** A proposal travels with the block it proposes. */
export const proposalMessageSchema = struct({
  v,
  type: literal("proposal"),
  proposal: signedProposalSchema,
  block: blockSchema,
});
export const voteMessageSchema = struct({ v, type: literal("vote"), vote: signedVoteSchema });
export const consensusMessageSchema = versioned(v, union("type", [proposalMessageSchema, voteMessageSchema]));
export type ProposalMessage = Infer<typeof proposalMessageSchema>;
export type VoteMessage = Infer<typeof voteMessageSchema>;
export type ConsensusMessage = Infer<typeof consensusMessageSchema>;

export const MAX_VOTE_MESSAGE_BYTES = 1024;
export const MAX_CONSENSUS_MESSAGE_BYTES = MAX_BLOCK_BYTES + 1024;
export const consensusCodec = defineMessage<ConsensusMessage>(
  "consensus",
  consensusMessageSchema,
  MAX_CONSENSUS_MESSAGE_BYTES,
  (m) => (m.type === "vote" ? MAX_VOTE_MESSAGE_BYTES : MAX_CONSENSUS_MESSAGE_BYTES),
);
export const encodeConsensusMessage = (m: ConsensusMessage): Uint8Array => consensusCodec.encode(m);
export const decodeConsensusMessage = (bytes: Uint8Array): ConsensusMessage => consensusCodec.decode(bytes);
