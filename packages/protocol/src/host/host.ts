/**
 * The libp2p host of a Deepshard node: TCP + TLS or noise + yamux, identify, ping and gossipsub, with
 * bytes-in/bytes-out gossip and request/response so that higher packages never touch libp2p streams.
 */
import { noise } from "@chainsafe/libp2p-noise";
import { bootstrap } from "@libp2p/bootstrap";
import { type GossipSub, type GossipsubOpts, gossipsub, TopicValidatorResult } from "@libp2p/gossipsub";
import { type Identify, identify } from "@libp2p/identify";
import type { Libp2p, PeerId, PrivateKey } from "@libp2p/interface";
import { mdns } from "@libp2p/mdns";
import { type Ping, ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { yamux } from "@libp2p/yamux";
import type { Multiaddr } from "@multiformats/multiaddr";
import { createLibp2p, type Libp2pOptions } from "libp2p";
import { DeepshardError } from "../errors.ts";
import { abortError, HostError } from "./errors.ts";
import { type ConnectionPolicy, PeerGater } from "./gater.ts";
import {
  GOSSIP_TOPIC_SCORE,
  type GossipHandler,
  type GossipTopicScore,
  type GossipValidator,
  type GossipVerdict,
} from "./gossip.ts";
import { type HostLogger, silentLogger } from "./logger.ts";
import { noiseCrypto } from "./noise-crypto.ts";
import {
  type HandleOptions,
  handleProtocol,
  parseTarget,
  type RequestHandler,
  type RequestOptions,
  type RequestTarget,
  sendRequest,
} from "./reqresp.ts";
import { nativeTls } from "./tls.ts";

/** How long `stop()` lets each connection close gracefully before cutting it. */
const CLOSE_GRACE_MS = 100;

export interface HostOptions {
  /** The node's identity; `peer.ts` derives it from the account key. A fresh ed25519 key when absent. */
  privateKey?: PrivateKey;
  /** Listen multiaddrs; default `/ip4/127.0.0.1/tcp/0` (loopback, a free port). */
  listen?: string[];
  /** Multiaddrs with a `/p2p/<peer id>` suffix, dialled once the host has started. */
  bootstrap?: string[];
  /** Discover and dial peers on the local network by multicast DNS. Off by default. */
  mdns?: boolean;
  /** An extra connection policy; the host's `gater` also blocks and unblocks peers at run time. */
  allow?: ConnectionPolicy;
  logger?: HostLogger;
  gossip?: {
    /** Gossipsub heartbeat (mesh maintenance), default 1000 ms; tests shorten it. */
    heartbeatIntervalMs?: number;
    /** Overrides of the per-topic score parameters. */
    topicScore?: Partial<GossipTopicScore>;
  };
}

export interface HostServices extends Record<string, unknown> {
  identify: Identify;
  ping: Ping;
  pubsub: GossipSub;
}

/** The parts of gossipsub's class that its exported interface leaves out. */
interface ScoredGossipSub {
  getScore(peerId: string): number;
  getMeshPeers(topic: string): string[];
  score: { params: { topics: Record<string, GossipTopicScore> } };
}

interface Subscription {
  validate: GossipValidator;
  handler: GossipHandler;
}

/** A running libp2p host; make one with `createHost()`. */
export class Host {
  readonly peerId: PeerId;
  /** The libp2p node underneath, for what this class does not wrap. */
  readonly libp2p: Libp2p<HostServices>;
  /** Blocks and unblocks peers at run time. */
  readonly gater: PeerGater;
  readonly #log: HostLogger;
  readonly #stopping = new AbortController();
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #topicScore: GossipTopicScore;
  #stopped: Promise<void> | undefined;

  constructor(node: Libp2p<HostServices>, gater: PeerGater, log: HostLogger, topicScore: GossipTopicScore) {
    this.libp2p = node;
    this.peerId = node.peerId;
    this.gater = gater;
    this.#log = log;
    this.#topicScore = topicScore;
    gater.onBlock = (peer) => {
      node
        .hangUp(peer)
        .catch((err: unknown) => log.debug("hang up failed", { peer: `${peer}`, error: `${err}` }));
    };
    node.services.pubsub.addEventListener("message", (evt) => {
      const msg = evt.detail;
      const sub = this.#subscriptions.get(msg.topic);
      if (!sub || msg.type !== "signed") return;
      Promise.resolve()
        .then(() => sub.handler(msg.data, msg.from))
        .catch((err: unknown) => log.error("gossip handler failed", { topic: msg.topic, error: `${err}` }));
    });
  }

  /** The addresses other hosts can dial, each ending in `/p2p/<peer id>`. */
  addresses(): Multiaddr[] {
    return this.libp2p.getMultiaddrs();
  }

  /** Connects to a peer (by multiaddr, or by peer id when its addresses are known); returns its id. */
  async dial(target: RequestTarget, options: { signal?: AbortSignal } = {}): Promise<PeerId> {
    this.#checkRunning();
    const signal = this.#signal(options.signal);
    try {
      const connection = await this.libp2p.dial(parseTarget(target), { signal });
      return connection.remotePeer;
    } catch (err) {
      if (signal.aborted) throw abortError(signal, "dial");
      if (err instanceof HostError) throw err;
      throw new HostError("DIAL_FAILED", "could not connect", { details: `${target}`, cause: err });
    }
  }

  async hangUp(peer: PeerId | Multiaddr): Promise<void> {
    await this.libp2p.hangUp(peer);
  }

  /** Peers with an open connection. */
  peers(): PeerId[] {
    return this.libp2p.getPeers();
  }

  /** Round-trip time to a peer in milliseconds. */
  async ping(target: RequestTarget, options: { signal?: AbortSignal } = {}): Promise<number> {
    this.#checkRunning();
    const signal = this.#signal(options.signal);
    try {
      return await this.libp2p.services.ping.ping(parseTarget(target), { signal });
    } catch (err) {
      if (signal.aborted) throw abortError(signal, "ping");
      throw new HostError("DIAL_FAILED", "ping failed", { details: `${target}`, cause: err });
    }
  }

  /**
   * Subscribes to a topic. `validate` runs inside gossipsub before anything is delivered or forwarded;
   * only accepted messages reach `handler`. A validator that throws a DeepshardError (typed bad input)
   * counts as `reject`; any other exception as `ignore`, so our own bugs do not punish peers.
   * Returns a function that unsubscribes.
   */
  subscribe(topic: string, validate: GossipValidator, handler: GossipHandler): () => void {
    this.#checkRunning();
    if (this.#subscriptions.has(topic)) {
      throw new HostError("INVALID_ARGUMENT", "already subscribed", { details: topic, meta: { topic } });
    }
    const pubsub = this.libp2p.services.pubsub;
    const log = this.#log;
    const subscription = { validate, handler };
    this.#subscriptions.set(topic, subscription);
    this.#scored().score.params.topics[topic] = { ...this.#topicScore };
    pubsub.topicValidators.set(topic, async (via, msg) => {
      if (msg.type !== "signed") return TopicValidatorResult.Reject;
      let verdict: GossipVerdict;
      try {
        verdict = await validate(msg.data, msg.from, via);
      } catch (err) {
        if (err instanceof DeepshardError) verdict = "reject";
        else {
          log.error("gossip validator threw", { topic, error: `${err}` });
          verdict = "ignore";
        }
      }
      if (verdict === "reject")
        log.debug("gossip message rejected", { topic, from: `${msg.from}`, via: `${via}` });
      return verdict === "accept"
        ? TopicValidatorResult.Accept
        : verdict === "reject"
          ? TopicValidatorResult.Reject
          : TopicValidatorResult.Ignore;
    });
    pubsub.subscribe(topic);
    return () => {
      if (this.#subscriptions.get(topic) !== subscription) return;
      this.#subscriptions.delete(topic);
      pubsub.unsubscribe(topic);
      pubsub.topicValidators.delete(topic);
    };
  }

  /** Publishes to a topic; returns how many peers it was sent to (0 when nobody listens yet). */
  async publish(topic: string, data: Uint8Array): Promise<number> {
    this.#checkRunning();
    try {
      const result = await this.libp2p.services.pubsub.publish(topic, data);
      return result.recipients.length;
    } catch (err) {
      throw new HostError("PUBLISH_FAILED", `could not publish on ${topic}`, { cause: err, meta: { topic } });
    }
  }

  /** Peers known to be subscribed to `topic`. */
  topicPeers(topic: string): PeerId[] {
    return this.libp2p.services.pubsub.getSubscribers(topic);
  }

  /** Peers in our gossipsub mesh for `topic` (those we forward full messages to). */
  meshPeers(topic: string): string[] {
    return this.#scored().getMeshPeers(topic);
  }

  /** Gossipsub's score of a peer: negative after it sent messages our validators rejected. */
  gossipScore(peer: PeerId | string): number {
    return this.#scored().getScore(peer.toString());
  }

  /** Serves `protocol`: each request is read (within limits), passed to `handler`, answered. */
  async handle(protocol: string, handler: RequestHandler, options: HandleOptions = {}): Promise<void> {
    this.#checkRunning();
    await handleProtocol(this.libp2p, protocol, handler, options, this.#stopping.signal, this.#log);
  }

  async unhandle(protocol: string): Promise<void> {
    await this.libp2p.unhandle(protocol);
  }

  /** Sends one request and returns the response; failures are HostErrors (TIMEOUT, TOO_LARGE, …). */
  async request(
    target: RequestTarget,
    protocol: string,
    body: Uint8Array,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    this.#checkRunning();
    return sendRequest(this.libp2p, target, protocol, body, options, this.#stopping.signal);
  }

  /** Aborts in-flight exchanges and closes every connection and listener. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      const reason = new HostError("NOT_RUNNING", "the host stopped");
      this.#stopping.abort(reason);
      // libp2p waits 500 ms for a connection whose peer reset it mid-close; close ours first, briefly.
      await Promise.all(
        this.libp2p.getConnections().map(async (connection) => {
          await connection.close({ signal: AbortSignal.timeout(CLOSE_GRACE_MS) }).catch(() => {});
          if (connection.status !== "closed") connection.abort(reason);
        }),
      );
      await this.libp2p.stop();
    })();
    return this.#stopped;
  }

  #checkRunning(): void {
    if (this.#stopped) throw new HostError("NOT_RUNNING", "the host is stopped");
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([this.#stopping.signal, signal]) : this.#stopping.signal;
  }

  #scored(): ScoredGossipSub {
    return this.libp2p.services.pubsub as unknown as ScoredGossipSub;
  }
}

/** Origin and sequence number of a gossip message, as text; empty (never cached) when either is missing. */
function fastMsgId(msg: { from?: Uint8Array | undefined; seqno?: Uint8Array | undefined }): string {
  if (!msg.from || !msg.seqno) return "";
  return `${Buffer.from(msg.from.buffer, msg.from.byteOffset, msg.from.byteLength).toString("base64")}.${Buffer.from(msg.seqno.buffer, msg.seqno.byteOffset, msg.seqno.byteLength).toString("base64")}`;
}

/** Starts a host; it listens and runs until `stop()`. */
export async function createHost(options: HostOptions = {}): Promise<Host> {
  const log = options.logger ?? silentLogger;
  const gater = new PeerGater(options.allow);
  const peerDiscovery: NonNullable<Libp2pOptions["peerDiscovery"]> = [];
  if (options.bootstrap && options.bootstrap.length > 0)
    peerDiscovery.push(bootstrap({ list: options.bootstrap }));
  if (options.mdns) peerDiscovery.push(mdns());
  const gossipOptions: Partial<GossipsubOpts> = {
    emitSelf: false,
    // A one-validator chain publishes with nobody listening; that is not an error.
    allowPublishToZeroTopicPeers: true,
    // Copies of one message arrive from several mesh peers, and gossipsub checks each copy's
    // envelope signature before its seen-cache unless this id finds the copy first. Origin and
    // sequence number are what the default message id is made of, and only messages whose
    // signature passed enter this cache: it skips exactly the re-verification of duplicates.
    fastMsgIdFn: fastMsgId,
    scoreParams: {
      // Devnets run many nodes on one machine; the colocation penalty is for the open internet.
      IPColocationFactorWhitelist: new Set(["127.0.0.1", "::1"]),
    },
  };
  if (options.gossip?.heartbeatIntervalMs !== undefined) {
    gossipOptions.heartbeatInterval = options.gossip.heartbeatIntervalMs;
  }
  let node: Libp2p<HostServices>;
  try {
    node = await createLibp2p({
      ...(options.privateKey ? { privateKey: options.privateKey } : {}),
      addresses: { listen: options.listen ?? ["/ip4/127.0.0.1/tcp/0"] },
      transports: [tcp()],
      // In order of preference: TLS moves bulk data at a fraction of noise's CPU cost (src/host/tls.ts);
      // noise stays for peers without TLS.
      connectionEncrypters: [nativeTls(), noise({ crypto: noiseCrypto })],
      streamMuxers: [yamux()],
      connectionGater: gater.toConnectionGater(),
      peerDiscovery,
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub(gossipOptions),
      },
    });
  } catch (err) {
    throw new HostError("START_FAILED", "the libp2p host could not start", { cause: err });
  }
  if (options.mdns) {
    node.addEventListener("peer:discovery", (evt) => {
      const peer = evt.detail.id;
      if (gater.isBlocked(peer) || node.getConnections(peer).length > 0) return;
      node
        .dial(peer)
        .catch((err: unknown) => log.debug("mdns dial failed", { peer: `${peer}`, error: `${err}` }));
    });
  }
  const host = new Host(node, gater, log, { ...GOSSIP_TOPIC_SCORE, ...options.gossip?.topicScore });
  log.info("host started", { peerId: `${node.peerId}`, addresses: node.getMultiaddrs().map(String) });
  return host;
}
