/**
 * Serves what this node holds to other nodes: data blobs by content hash and in ranges (validators
 * fetching an informant's submission), weight chunks by weights id and index with their proofs, and
 * weights manifests. Chunks go only to peers the access hook approves — the daemon plugs in the
 * ledger's license check. A malformed request gets a BAD_REQUEST error reply; refusals are typed
 * replies (not_found, no_license, bad_range, busy) that the requester turns into a BlobError.
 */
import {
  BLOB_CHUNK_MAX,
  type BlobResponse,
  blobProtocol,
  blobRequestCodec,
  blobResponseCodec,
  CodecError,
  MAX_BLOB_REQUEST_BYTES,
  MAX_BLOB_RESPONSE_BYTES,
  MAX_WEIGHTS_REQUEST_BYTES,
  MAX_WEIGHTS_RESPONSE_BYTES,
  publicKeyFromPeerId,
  type WeightsResponse,
  weightsProtocol,
  weightsRequestCodec,
  weightsResponseCodec,
} from "@deepshard/protocol";
import { type Host, type HostLogger, type RequestContext, silentLogger } from "@deepshard/protocol/host";
import type { ChunkStore } from "./chunks.ts";
import { BlobError } from "./errors.ts";
import { hashHex, hexToBytes } from "./files.ts";
import type { BlobStore } from "./store.ts";

/**
 * Whether the peer with account key `account` (its 32-byte ed25519 public key) may receive chunks
 * of `weightsId` (hex). "Holders check the license on the ledger before serving chunks."
 */
type PeerId = RequestContext["from"];

export type CanServe = (account: Uint8Array, weightsId: string, peer: PeerId) => boolean | Promise<boolean>;

export interface BlobServiceOptions {
  chainId: string;
  /** Data blobs to serve; the data protocol is not registered without it. */
  blobs?: BlobStore;
  /** Weight chunks to serve; the weights protocol is not registered without it. */
  chunks?: ChunkStore;
  /** The access check for weight chunks; required with `chunks` so no node serves by accident. */
  canServe?: CanServe;
  /** Requests served at once over both protocols; more are answered `busy`. Default 64. */
  maxConcurrent?: number;
  /** Deadline for reading a request and sending its reply. Default 30 s. */
  timeoutMs?: number;
  logger?: HostLogger;
}

/** Counters for metrics. */
export interface BlobServiceStats {
  blobRequests: number;
  blobBytes: number;
  chunkRequests: number;
  chunkBytes: number;
  manifestRequests: number;
  refusedNoLicense: number;
  refusedNotFound: number;
  refusedBadRange: number;
  refusedBusy: number;
  badRequests: number;
}

export class BlobService {
  readonly host: Host;
  readonly protocols: string[] = [];
  readonly stats: BlobServiceStats = {
    blobRequests: 0,
    blobBytes: 0,
    chunkRequests: 0,
    chunkBytes: 0,
    manifestRequests: 0,
    refusedNoLicense: 0,
    refusedNotFound: 0,
    refusedBadRange: 0,
    refusedBusy: 0,
    badRequests: 0,
  };
  readonly #options: BlobServiceOptions;
  readonly #maxConcurrent: number;
  readonly #log: HostLogger;
  #active = 0;

  private constructor(host: Host, options: BlobServiceOptions) {
    this.host = host;
    this.#options = options;
    this.#maxConcurrent = options.maxConcurrent ?? 64;
    this.#log = options.logger ?? silentLogger;
  }

  /** Registers the protocols on `host`; `stop()` unregisters them. */
  static async start(host: Host, options: BlobServiceOptions): Promise<BlobService> {
    if (options.chunks && !options.canServe) {
      throw new BlobError("INVALID_ARGUMENT", "serving weight chunks needs a canServe access check");
    }
    const service = new BlobService(host, options);
    const limits = (maxRequestBytes: number, maxResponseBytes: number) => ({
      maxRequestBytes,
      maxResponseBytes,
      timeoutMs: options.timeoutMs ?? 30_000,
      // Beyond this libp2p resets streams silently; the busy reply below is the clear answer.
      maxInboundStreams: service.#maxConcurrent + 8,
    });
    if (options.blobs) {
      const protocol = blobProtocol(options.chainId);
      await host.handle(
        protocol,
        (req) => service.#guard(() => service.#serveBlob(req), busyBlob(req)),
        limits(MAX_BLOB_REQUEST_BYTES, MAX_BLOB_RESPONSE_BYTES),
      );
      service.protocols.push(protocol);
    }
    if (options.chunks) {
      const protocol = weightsProtocol(options.chainId);
      await host.handle(
        protocol,
        (req, ctx) => service.#guard(() => service.#serveWeights(req, ctx), busyWeights(req)),
        limits(MAX_WEIGHTS_REQUEST_BYTES, MAX_WEIGHTS_RESPONSE_BYTES),
      );
      service.protocols.push(protocol);
    }
    return service;
  }

  async stop(): Promise<void> {
    for (const p of this.protocols) await this.host.unhandle(p).catch(() => {});
  }

  async #guard(serve: () => Promise<Uint8Array>, busy: () => Uint8Array): Promise<Uint8Array> {
    if (this.#active >= this.#maxConcurrent) {
      this.stats.refusedBusy++;
      return busy();
    }
    this.#active++;
    try {
      return await serve();
    } finally {
      this.#active--;
    }
  }

  async #serveBlob(raw: Uint8Array): Promise<Uint8Array> {
    const req = this.#decode(() => blobRequestCodec.decode(raw));
    const blobs = this.#options.blobs!;
    const refuse = (reason: "not_found" | "bad_range"): Uint8Array => {
      if (reason === "not_found") this.stats.refusedNotFound++;
      else this.stats.refusedBadRange++;
      const reply: BlobResponse = { v: 1, type: "blob.error", hash: req.hash, reason };
      return blobResponseCodec.encode(reply);
    };
    const size = blobs.size(req.hash);
    if (size === undefined) return refuse("not_found");
    if (req.offset > size) return refuse("bad_range");
    let data: Uint8Array;
    try {
      data = await blobs.read(req.hash, req.offset, Math.min(req.length, BLOB_CHUNK_MAX));
    } catch (err) {
      // Deleted between the lookup and the read.
      if (err instanceof BlobError && err.code === "NOT_FOUND") return refuse("not_found");
      throw err;
    }
    this.stats.blobRequests++;
    this.stats.blobBytes += data.byteLength;
    const reply: BlobResponse = {
      v: 1,
      type: "blob.chunk",
      hash: req.hash,
      offset: req.offset,
      totalSize: size,
      data,
    };
    return blobResponseCodec.encode(reply);
  }

  async #serveWeights(raw: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    const req = this.#decode(() => weightsRequestCodec.decode(raw));
    const chunks = this.#options.chunks!;
    const id = hashHex(req.weightsId);
    const refuse = (reason: "not_found" | "no_license"): Uint8Array => {
      if (reason === "not_found") this.stats.refusedNotFound++;
      else this.stats.refusedNoLicense++;
      const reply: WeightsResponse = { v: 1, type: "weights.error", weightsId: req.weightsId, reason };
      return weightsResponseCodec.encode(reply);
    };
    const manifest = chunks.manifest(id);
    if (req.type === "weights.manifest.request") {
      // The manifest only lays out chunks that are useless without a license: it is public.
      if (!manifest) return refuse("not_found");
      this.stats.manifestRequests++;
      const reply: WeightsResponse = {
        v: 1,
        type: "weights.manifest",
        weightsId: hexToBytes(manifest.weightsId),
        chunkSize: manifest.chunkSize,
        chunkCount: manifest.chunkCount,
        totalSize: manifest.totalSize,
        files: manifest.files.map((f) => ({ ...f })),
      };
      return weightsResponseCodec.encode(reply);
    }
    const licensed = await this.#licensed(ctx.from, id);
    if (licensed === "failed") return busyWeights(raw)();
    if (!licensed) return refuse("no_license");
    if (!chunks.has(id, req.index)) return refuse("not_found");
    let chunk: Awaited<ReturnType<ChunkStore["get"]>>;
    try {
      chunk = await chunks.get(id, req.index);
    } catch (err) {
      if (err instanceof BlobError && err.code === "NOT_FOUND") return refuse("not_found");
      throw err;
    }
    this.stats.chunkRequests++;
    this.stats.chunkBytes += chunk.bytes.byteLength;
    const reply: WeightsResponse = {
      v: 1,
      type: "weights.chunk",
      weightsId: req.weightsId,
      index: req.index,
      data: chunk.bytes,
      proof: chunk.proof,
    };
    return weightsResponseCodec.encode(reply);
  }

  /** The access hook's answer; "failed" when it threw (the requester is told to come back). */
  async #licensed(peer: PeerId, weightsId: string): Promise<boolean | "failed"> {
    let account: Uint8Array;
    try {
      account = publicKeyFromPeerId(peer);
    } catch {
      // A peer whose id is not an ed25519 account key cannot hold a license.
      return false;
    }
    try {
      return (await this.#options.canServe!(account, weightsId, peer)) === true;
    } catch (err) {
      this.#log.warn("license check failed", { peer: `${peer}`, weightsId, error: String(err) });
      this.stats.refusedBusy++;
      return "failed";
    }
  }

  #decode<T>(decode: () => T): T {
    try {
      return decode();
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      this.stats.badRequests++;
      throw new BlobError("BAD_REQUEST", `malformed request: ${err.shortMessage}`, { cause: err });
    }
  }
}

/** A `busy` reply to a blob request, or BAD_REQUEST when it does not even decode. */
function busyBlob(raw: Uint8Array): () => Uint8Array {
  return () => {
    const hash = tryDecode(() => blobRequestCodec.decode(raw).hash);
    return blobResponseCodec.encode({ v: 1, type: "blob.error", hash, reason: "busy" });
  };
}

function busyWeights(raw: Uint8Array): () => Uint8Array {
  return () => {
    const weightsId = tryDecode(() => weightsRequestCodec.decode(raw).weightsId);
    return weightsResponseCodec.encode({ v: 1, type: "weights.error", weightsId, reason: "busy" });
  };
}

function tryDecode<T>(decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    throw new BlobError("BAD_REQUEST", "malformed request", { cause: err });
  }
}
