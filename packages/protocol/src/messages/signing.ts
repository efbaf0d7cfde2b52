/**
 * The bytes a signature covers. Every signed payload carries its `type` and `chainId`, and the
 * bytes start with the ASCII domain prefix `deepshard/v1/<type>`, so a signature made for one
 * message type or one chain can never be replayed as another. (The prefix ends where the CBOR map
 * begins: its first byte, 0xa0–0xbf, is not ASCII.) Signing itself lives in keys.ts.
 */
import { encode } from "../codec.ts";
import { union, versioned } from "../schema.ts";
import { v } from "./common.ts";
import { type TxPayload, txPayloadVariants } from "./tx.ts";
import {
  type Precommit,
  type Proposal,
  precommitPayloadSchema,
  prevotePayloadSchema,
  proposalPayloadSchema,
  type Vote,
} from "./votes.ts";

export const SIGNING_DOMAIN = "deepshard/v1/";

export type SignedPayload = TxPayload | Proposal | Vote;
export type SignedPayloadType = SignedPayload["type"];

export const signedPayloadSchema = versioned(
  v,
  union("type", [...txPayloadVariants, proposalPayloadSchema, prevotePayloadSchema, precommitPayloadSchema]),
);

const prefixes = new Map<string, Uint8Array>();
function domainPrefix(type: string): Uint8Array {
  let prefix = prefixes.get(type);
  if (!prefix) {
    prefix = new TextEncoder().encode(SIGNING_DOMAIN + type);
    prefixes.set(type, prefix);
  }
  return prefix;
}

/** `"deepshard/v1/" + payload.type` in ASCII, then the payload's canonical encoding. */
export function signingBytes(payload: SignedPayload): Uint8Array {
  const parsed = signedPayloadSchema.parse(payload, "payload");
  const body = encode(parsed);
  const prefix = domainPrefix(parsed.type);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix);
  out.set(body, prefix.length);
  return out;
}

/**
 * The precommit each signature of a commit signed: a commit stores only (validator, signature),
 * the rest is the commit's height, round and block hash on the block's chain.
 */
export function commitPrecommit(
  chainId: string,
  commit: { height: number; round: number; blockHash: Uint8Array },
): Precommit {
  return {
    v: 1,
    type: "precommit",
    chainId,
    height: commit.height,
    round: commit.round,
    blockHash: commit.blockHash,
  };
}
