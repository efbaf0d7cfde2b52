/**
 * Gossip topics and how their senders are scored. A topic's validator runs inside gossipsub, before
 * the message is delivered or forwarded: a `reject` drops it, and counts an invalid delivery against
 * the peer that sent it, which lowers that peer's gossipsub score (P4) until it is no longer gossiped
 * with (score below -10) and then ignored entirely (graylisted below -80).
 */
import type { PeerId } from "@libp2p/interface";
import { HostError } from "./errors.ts";

/** What a topic validator decides about one message. */
export type GossipVerdict = "accept" | "reject" | "ignore";

/**
 * `from` is the author that signed the gossipsub envelope; `via` is the neighbour that handed it over
 * (the one penalised on reject).
 */
export type GossipValidator = (
  data: Uint8Array,
  from: PeerId,
  via: PeerId,
) => GossipVerdict | Promise<GossipVerdict>;

export type GossipHandler = (data: Uint8Array, from: PeerId) => void | Promise<void>;

const NAME = /^[a-z0-9][a-z0-9._-]*$/;

/** `/deepshard/<chainId>/<name>/<version>`: one topic per chain and message version. */
export function gossipTopic(chainId: string, name: string, version = 1): string {
  if (!NAME.test(chainId) || !NAME.test(name) || !Number.isSafeInteger(version) || version < 1) {
    throw new HostError("INVALID_ARGUMENT", "bad gossip topic", {
      details: "chain id and name are lowercase [a-z0-9._-], the version a positive integer",
      meta: { chainId, name, version },
    });
  }
  return `/deepshard/${chainId}/${name}/${version}`;
}

/**
 * Score parameters applied to every topic we subscribe to (gossipsub's TopicScoreParams). Positive terms
 * are small (time in mesh up to +1, first deliveries up to +10); one invalid message costs -50, two
 * cost -200 (graylisted), and the counter decays by 1% a second.
 */
export const GOSSIP_TOPIC_SCORE = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 100,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 10,
  // Mesh delivery quotas penalise honest peers on quiet topics (a small chain idles for minutes): off.
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 100,
  meshMessageDeliveriesThreshold: 20,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  invalidMessageDeliveriesWeight: -50,
  invalidMessageDeliveriesDecay: 0.99,
} as const;

export type GossipTopicScore = { -readonly [K in keyof typeof GOSSIP_TOPIC_SCORE]: number };
