/**
 * Consensus over the protocol's libp2p host: proposals and votes on one gossip topic per chain,
 * block sync over request/response. A topic validator decodes every message and checks its
 * signature before consensus sees it; a malformed or forged message is rejected, which lowers the
 * gossipsub score of the peer that relayed it.
 *
 * On the topic a proposal's block carries its transactions as their canonical encodings (the
 * "compact" block): a receiver hashes each one and takes the transaction it already holds (from
 * its mempool) instead of decoding it, which is most of them. Block sync speaks the protocol's
 * sync messages with full blocks.
 */
import {
  array,
  bytes,
  commitSchema,
  DeepshardError,
  decodeSyncRequest,
  decodeSyncResponse,
  defineMessage,
  encodeBlock,
  encodeCommit,
  encodeSyncRequest,
  encodeSyncResponse,
  headerSchema,
  literal,
  MAX_BLOCK_TXS,
  MAX_CONSENSUS_MESSAGE_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  MAX_SYNC_RESPONSE_BYTES,
  MAX_TX_BYTES,
  nullable,
  PROTOCOL_VERSION,
  type SignedTx,
  SYNC_MAX_BLOCKS,
  sha256,
  signedProposalSchema,
  signingBytes,
  struct,
  union,
  verify,
  version,
  voteMessageSchema,
} from "@deepshard/protocol";
import type { Host } from "@deepshard/protocol/host";
import { txFromBytes, txInfo } from "../mempool/tx-info.ts";
import type { Block, SyncedBlock } from "./block.ts";
import type { ConsensusTransport } from "./transport.ts";
import type { ConsensusMessage } from "./types.ts";

type Message = ConsensusMessage<Block<SignedTx>>;

const v = version(PROTOCOL_VERSION);
/** A block whose transactions are their canonical encodings. */
export const compactBlockSchema = struct({
  v,
  header: headerSchema,
  txs: array(bytes({ max: MAX_TX_BYTES }), { max: MAX_BLOCK_TXS }),
  lastCommit: nullable(commitSchema),
});
const compactProposalSchema = struct({
  v,
  type: literal("proposal"),
  proposal: signedProposalSchema,
  block: compactBlockSchema,
});
const compactMessageSchema = union("type", [compactProposalSchema, voteMessageSchema]);
type CompactBlock = Omit<Block<SignedTx>, "txs"> & { txs: Uint8Array[] };
type CompactMessage =
  | { v: 1; type: "vote"; vote: unknown }
  | { v: 1; type: "proposal"; proposal: unknown; block: CompactBlock };
const compactMessageCodec = defineMessage<CompactMessage>(
  "consensus",
  compactMessageSchema as never,
  MAX_CONSENSUS_MESSAGE_BYTES,
);
export const compactBlockCodec = defineMessage<CompactBlock>(
  "compactBlock",
  compactBlockSchema as never,
  MAX_CONSENSUS_MESSAGE_BYTES,
);

export function toCompactBlock(block: Block<SignedTx>): CompactBlock {
  return { ...block, txs: block.txs.map((tx) => txInfo(tx).bytes) };
}

/** The block of a compact one: transactions `known` holds are taken from it, the others decoded. */
export function fromCompactBlock(
  block: CompactBlock,
  known?: (id: string) => SignedTx | undefined,
): Block<SignedTx> {
  return { ...block, txs: block.txs.map((b) => txFromBytes(b, known)) };
}

/** Why a gossiped message was rejected (its relayer is penalised). */
export class GossipRejection extends DeepshardError<"INVALID_MESSAGE"> {
  override name = "GossipRejection";
}

/** The request/response protocol of block sync on `chainId`. */
export function syncProtocol(chainId: string): string {
  return `/deepshard/${chainId}/sync/1`;
}

export interface Libp2pTransportOptions {
  host: Host;
  chainId: string;
  /** This node's latest committed height, sent with sync responses. */
  latestHeight: () => number;
  /** Deadline of one sync request. */
  syncTimeoutMs?: number | undefined;
  /** Called when publishing fails (nobody subscribed yet is not a failure). */
  onError?: ((err: unknown) => void) | undefined;
  /** A proposal this node made is re-sent at most this often (default 2000 ms). */
  proposalResendMs?: number | undefined;
  /** Transactions this node holds already, by id (its mempool): proposals reuse them. */
  knownTx?: ((id: string) => SignedTx | undefined) | undefined;
}

/** Bytes a sync response keeps free for its envelope. */
const RESPONSE_SLACK = 1024;

export class Libp2pTransport implements ConsensusTransport<SignedTx> {
  readonly id: string;
  readonly topic: string;
  private readonly host: Host;
  private readonly options: Libp2pTransportOptions;
  private messageHandler: ((message: Message, from: string) => void) | undefined;
  private blocksHandler:
    | ((fromHeight: number, maxBlocks: number) => Promise<SyncedBlock<SignedTx>[]>)
    | undefined;
  /** Messages the validator decoded, so the handler does not decode them again. */
  private readonly decoded = new WeakMap<Uint8Array, Message>();
  /**
   * Messages checked lately, by the hash of their bytes: consensus re-sends its messages while a
   * height lasts, and a re-sent proposal (a whole block) need not be decoded and checked again.
   */
  private readonly checked = new Map<string, Message>();
  /** What this node sent: the bytes (encoded once) and when. */
  private readonly sent = new WeakMap<object, { bytes: Uint8Array; at: number }>();
  private unsubscribe: (() => void) | undefined;

  private constructor(options: Libp2pTransportOptions, topic: string) {
    this.options = options;
    this.host = options.host;
    this.id = options.host.peerId.toString();
    this.topic = topic;
  }

  /** Subscribes to the consensus topic and serves block sync on `host`. */
  static async create(options: Libp2pTransportOptions): Promise<Libp2pTransport> {
    // Loaded here so that importing the ledger does not load libp2p.
    const { gossipTopic } = await import("@deepshard/protocol/host");
    const transport = new Libp2pTransport(options, gossipTopic(options.chainId, "consensus"));
    await transport.open();
    return transport;
  }

  private async open(): Promise<void> {
    this.unsubscribe = this.host.subscribe(
      this.topic,
      (data) => {
        const message = this.check(data);
        this.decoded.set(data, message);
        return "accept";
      },
      (data, from) => {
        const message = this.decoded.get(data) ?? this.check(data);
        this.messageHandler?.(message, from.toString());
      },
    );
    await this.host.handle(syncProtocol(this.options.chainId), (request) => this.serve(request), {
      maxRequestBytes: MAX_SYNC_REQUEST_BYTES,
      maxResponseBytes: MAX_SYNC_RESPONSE_BYTES,
    });
  }

  /** Decodes and authenticates a gossiped consensus message; throws a typed error (a reject) otherwise. */
  private check(data: Uint8Array): Message {
    const key = Buffer.from(sha256(data)).toString("hex");
    const seen = this.checked.get(key);
    if (seen) return seen;
    const message = this.decodeAndVerify(data);
    if (this.checked.size >= 256) this.checked.delete(this.checked.keys().next().value!);
    this.checked.set(key, message);
    return message;
  }

  private decodeAndVerify(data: Uint8Array): Message {
    const wire = compactMessageCodec.decode(data);
    const message = (
      wire.type === "proposal" ? { ...wire, block: fromCompactBlock(wire.block, this.options.knownTx) } : wire
    ) as Message;
    const signed = message.type === "vote" ? message.vote : message.proposal;
    if (signed.payload.chainId !== this.options.chainId) {
      throw new GossipRejection("INVALID_MESSAGE", "a consensus message for another chain");
    }
    if (!verify(signed.signature, signingBytes(signed.payload), signed.signer)) {
      throw new GossipRejection("INVALID_MESSAGE", "a consensus message with an invalid signature");
    }
    return message;
  }

  /**
   * Publishes a message. Consensus re-sends its own messages while a height lasts (to cover losses):
   * a vote goes again each time, a proposal (a whole block) at most every `proposalResendMs`.
   */
  broadcast(message: Message): void {
    const now = Date.now();
    const previous = this.sent.get(message);
    if (
      previous &&
      message.type === "proposal" &&
      now - previous.at < (this.options.proposalResendMs ?? 2000)
    )
      return;
    let bytes = previous?.bytes;
    if (!bytes) {
      try {
        bytes = compactMessageCodec.encode(
          (message.type === "proposal"
            ? { ...message, block: toCompactBlock(message.block) }
            : message) as CompactMessage,
        );
      } catch (err) {
        this.options.onError?.(err);
        return;
      }
    }
    this.sent.set(message, { bytes, at: now });
    this.host.publish(this.topic, bytes).catch((err: unknown) => this.options.onError?.(err));
  }

  onMessage(handler: (message: Message, from: string) => void): void {
    this.messageHandler = handler;
  }

  async requestBlocks(peer: string, fromHeight: number, maxBlocks: number): Promise<SyncedBlock<SignedTx>[]> {
    const request = encodeSyncRequest({
      v: 1,
      type: "sync.request",
      fromHeight,
      maxBlocks: Math.max(1, Math.min(maxBlocks, SYNC_MAX_BLOCKS)),
    });
    const response = await this.host.request(peer, syncProtocol(this.options.chainId), request, {
      maxResponseBytes: MAX_SYNC_RESPONSE_BYTES,
      timeoutMs: this.options.syncTimeoutMs ?? 10_000,
    });
    return decodeSyncResponse(response).blocks as SyncedBlock<SignedTx>[];
  }

  onBlocksRequest(
    handler: (fromHeight: number, maxBlocks: number) => Promise<SyncedBlock<SignedTx>[]>,
  ): void {
    this.blocksHandler = handler;
  }

  private async serve(requestBytes: Uint8Array): Promise<Uint8Array> {
    const request = decodeSyncRequest(requestBytes);
    const blocks = this.blocksHandler ? await this.blocksHandler(request.fromHeight, request.maxBlocks) : [];
    // Whole blocks only, as many as fit in one response.
    const out: SyncedBlock<SignedTx>[] = [];
    let bytes = RESPONSE_SLACK;
    for (const entry of blocks) {
      const size =
        encodeBlock(entry.block as Parameters<typeof encodeBlock>[0]).length +
        encodeCommit(entry.commit).length;
      if (bytes + size > MAX_SYNC_RESPONSE_BYTES) break;
      bytes += size;
      out.push(entry);
    }
    return encodeSyncResponse({
      v: 1,
      type: "sync.response",
      latestHeight: this.options.latestHeight(),
      blocks: out as Parameters<typeof encodeSyncResponse>[0]["blocks"],
    });
  }

  /** Leaves the topic and stops serving sync; the host is closed by its owner. */
  async close(): Promise<void> {
    this.unsubscribe?.();
    this.messageHandler = undefined;
    this.blocksHandler = undefined;
    await this.host.unhandle(syncProtocol(this.options.chainId)).catch(() => {});
  }
}
