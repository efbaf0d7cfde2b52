/**
 * Fetches blobs and weights from other nodes. A data blob comes in ranged requests (a few in flight),
 * with every reply checked against the announced size before its bytes are kept, and its sha256
 * checked at the end; when a peer fails the fetch resumes at the same offset from the next one.
 * Weights come chunk by chunk from several holders at once (bounded concurrency): each chunk is
 * verified against the weights id (the Merkle root) before it is written, and a holder that times
 * out, errs, refuses or sends a bad chunk is replaced by another holder of that chunk. Peers that
 * send bad data are remembered in `badPeers` and not asked again.
 */
import { createHash } from "node:crypto";
import {
  BLOB_CHUNK_MAX,
  blobProtocol,
  blobRequestCodec,
  blobResponseCodec,
  DeepshardError,
  MAX_BLOB_RESPONSE_BYTES,
  MAX_TRANSFER_CHUNK_BYTES,
  MAX_WEIGHTS_MANIFEST_BYTES,
  WEIGHTS_CHUNK_OVERHEAD,
  type WeightsChunk,
  type WeightsRequest,
  type WeightsResponse,
  weightsProtocol,
  weightsRequestCodec,
  weightsResponseCodec,
} from "@deepshard/protocol";
import {
  type Host,
  HostError,
  type HostLogger,
  type RequestTarget,
  silentLogger,
} from "@deepshard/protocol/host";
import {
  chunkLocation,
  Reassembler,
  type ShardManifest,
  validateManifest,
  verifyChunk,
} from "@deepshard/tensor";
import type { ChunkStore } from "./chunks.ts";
import { BlobError, type BlobErrorCode } from "./errors.ts";
import { hashHex, hexToBytes } from "./files.ts";
import type { BlobInfo, BlobStore } from "./store.ts";

export interface BlobClientOptions {
  chainId: string;
  /** Deadline of each request (one range or one chunk). Default 15 s. */
  timeoutMs?: number;
  /** Range requests in flight per blob (1 MiB each). Default 8. */
  rangesInFlight?: number;
  /** Chunk requests in flight per weights fetch. Default 8. */
  concurrency?: number;
  logger?: HostLogger;
}

/** Who holds which chunk: chunk index → peers (peer ids or multiaddrs), best first. */
export type Holders = ReadonlyMap<number, readonly RequestTarget[]>;

export interface PeerStats {
  chunks: number;
  bytes: number;
  failures: number;
}

export interface FetchProgress {
  chunksDone: number;
  chunksTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Per peer (by peer id): chunks and bytes received from it, failed attempts. */
  peers: Record<string, PeerStats>;
}

/** One failed attempt at a chunk; the fetch goes on with another holder when there is one. */
export interface ChunkFailure {
  index: number;
  peer: string;
  error: DeepshardError;
}

export interface FetchChunksOptions {
  /** Chunk requests in flight; default from the client. */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (progress: FetchProgress) => void;
  onFailure?: (failure: ChunkFailure) => void;
}

export interface FetchWeightsOptions extends FetchChunksOptions {
  /** Where the model files are written (they appear only once every chunk is in). */
  dir: string;
}

export interface FetchWeightsResult {
  manifest: ShardManifest;
  dir: string;
  /** File names written in `dir`. */
  files: string[];
  peers: Record<string, PeerStats>;
}

interface Attempt {
  peer: string;
  error: DeepshardError;
}

/** A transport failure this many times in a row takes a holder out of the current fetch. */
const MAX_TRANSPORT_FAILURES = 2;
/** How often one chunk may be retried at a holder that answered `busy`. */
const MAX_BUSY_RETRIES = 3;
/** A refusal that every peer gave is reported as itself, not as UNAVAILABLE. */
const SHARED_REASONS = new Set<string>([
  "NO_LICENSE",
  "NOT_FOUND",
  "TOO_LARGE",
  "SIZE_MISMATCH",
  "BUSY",
  "HASH_MISMATCH",
  "INVALID_CHUNK",
]);

/** The peer id in a target (a peer id, or the `/p2p/` suffix of a multiaddr). */
export function peerKey(target: RequestTarget): string {
  const s = target.toString();
  return /\/p2p\/([^/]+)$/.exec(s)?.[1] ?? s;
}

export class BlobClient {
  readonly host: Host;
  /** Peers that sent bad data (a chunk failing its proof, a malformed reply); never asked again. */
  readonly badPeers = new Set<string>();
  readonly #chainId: string;
  readonly #timeoutMs: number;
  readonly #rangesInFlight: number;
  readonly #concurrency: number;
  readonly #log: HostLogger;

  constructor(host: Host, options: BlobClientOptions) {
    this.host = host;
    this.#chainId = options.chainId;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#rangesInFlight = Math.max(1, options.rangesInFlight ?? 8);
    this.#concurrency = Math.max(1, options.concurrency ?? 8);
    this.#log = options.logger ?? silentLogger;
  }

  /** Lets a peer marked bad be asked again. */
  forgive(peer: RequestTarget): void {
    this.badPeers.delete(peerKey(peer));
  }

  // ---- Data blobs ----

  /** Fetches a blob into memory; `size` is the announced size (more is refused, TOO_LARGE). */
  async fetchBlob(
    hash: Uint8Array | string,
    size: number,
    fromPeers: readonly RequestTarget[],
    options: { signal?: AbortSignal } = {},
  ): Promise<Uint8Array> {
    const hex = hashHex(hash);
    checkSize(size);
    return this.#withFailover(hex, size, fromPeers, options.signal, async (source) => {
      const out = new Uint8Array(size);
      const hasher = createHash("sha256");
      let offset = 0;
      for await (const data of source) {
        out.set(data, offset);
        offset += data.byteLength;
        hasher.update(data);
      }
      const actual = hasher.digest("hex");
      if (actual !== hex) throw hashMismatch(hex, actual);
      return out;
    });
  }

  /** Fetches a blob straight into `store` (verified while it streams; nothing stored if refused). */
  async fetchBlobTo(
    store: BlobStore,
    hash: Uint8Array | string,
    size: number,
    fromPeers: readonly RequestTarget[],
    options: { signal?: AbortSignal } = {},
  ): Promise<BlobInfo> {
    const hex = hashHex(hash);
    checkSize(size);
    const held = store.size(hex);
    if (held !== undefined) {
      // The hash fixes the size: a stored blob of another size means the announcement is wrong.
      if (held === size) return { hash: hex, size };
      throw new BlobError(held > size ? "TOO_LARGE" : "SIZE_MISMATCH", `blob ${hex} is not ${size} bytes`, {
        details: `the stored copy has ${held} bytes`,
        meta: { hash: hex, announced: size, held },
      });
    }
    return this.#withFailover(hex, size, fromPeers, options.signal, (source) =>
      store.put(source, {
        expectedHash: hex,
        size,
        maxBytes: size,
        ...(options.signal ? { signal: options.signal } : {}),
      }),
    );
  }

  /** Runs `sink` over the blob's bytes; after a hash mismatch, again without the peers that sent them. */
  async #withFailover<T>(
    hex: string,
    size: number,
    peers: readonly RequestTarget[],
    signal: AbortSignal | undefined,
    sink: (source: AsyncIterable<Uint8Array>) => Promise<T>,
  ): Promise<T> {
    const attempts: Attempt[] = [];
    const excluded = new Set<string>();
    for (;;) {
      const candidates = peers.filter((p) => !excluded.has(peerKey(p)) && !this.badPeers.has(peerKey(p)));
      if (candidates.length === 0) throw summarize(`fetching blob ${hex}`, attempts);
      const used = new Set<string>();
      try {
        return await sink(this.#blobStream(hex, size, candidates, used, attempts, signal));
      } catch (err) {
        if (!(err instanceof BlobError && err.code === "HASH_MISMATCH")) throw err;
        // Someone who sent bytes lied; only a lone sender is surely the one.
        for (const p of used) {
          excluded.add(p);
          attempts.push({ peer: p, error: err });
        }
        if (used.size === 1) this.#markBad([...used][0]!, err);
        if (used.size === 0) throw err;
      }
    }
  }

  /** The blob's bytes in order, from the candidates one after another, resuming where one failed. */
  async *#blobStream(
    hex: string,
    size: number,
    candidates: readonly RequestTarget[],
    used: Set<string>,
    attempts: Attempt[],
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    let offset = 0;
    if (size === 0) return;
    for (let c = 0, busy = 0; c < candidates.length; ) {
      const peer = candidates[c]!;
      const key = peerKey(peer);
      const attempt = new AbortController();
      const sig = signal ? AbortSignal.any([signal, attempt.signal]) : attempt.signal;
      try {
        for await (const data of this.#ranges(peer, hex, size, offset, sig)) {
          used.add(key);
          offset += data.byteLength;
          yield data;
        }
        return;
      } catch (err) {
        const error = this.#perPeer(err, signal);
        this.#log.debug("blob range failed", { peer: key, hash: hex, offset, error: error.shortMessage });
        if (error.code === "BUSY" && busy < MAX_BUSY_RETRIES) {
          await sleep(50 * ++busy, sig);
          continue;
        }
        attempts.push({ peer: key, error });
        if (error.code === "BAD_RESPONSE") this.#markBad(key, error);
        c++;
        busy = 0;
      } finally {
        attempt.abort();
      }
    }
    throw summarize(`fetching blob ${hex}`, attempts);
  }

  /** Ranges from `start` to the end from one peer, a few requests ahead. */
  async *#ranges(
    peer: RequestTarget,
    hex: string,
    size: number,
    start: number,
    signal: AbortSignal,
  ): AsyncGenerator<Uint8Array> {
    const pending: Promise<Uint8Array>[] = [];
    let next = start;
    const issue = () => {
      const offset = next;
      const length = Math.min(BLOB_CHUNK_MAX, size - offset);
      next += length;
      const p = this.#range(peer, hex, size, offset, length, signal);
      // Awaited in order below; a later one failing first must not be an unhandled rejection.
      p.catch(() => {});
      pending.push(p);
    };
    while (next < size && pending.length < this.#rangesInFlight) issue();
    while (pending.length > 0) {
      const data = await pending.shift()!;
      if (next < size) issue();
      yield data;
    }
  }

  async #range(
    peer: RequestTarget,
    hex: string,
    size: number,
    offset: number,
    length: number,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    const body = blobRequestCodec.encode({
      v: 1,
      type: "blob.request",
      hash: hexToBytes(hex),
      offset,
      length,
    });
    const raw = await this.host.request(peer, blobProtocol(this.#chainId), body, {
      timeoutMs: this.#timeoutMs,
      maxResponseBytes: MAX_BLOB_RESPONSE_BYTES,
      signal,
    });
    const key = peerKey(peer);
    let reply: ReturnType<typeof blobResponseCodec.decode>;
    try {
      reply = blobResponseCodec.decode(raw);
    } catch (cause) {
      throw new BlobError("BAD_RESPONSE", `peer ${key} sent a malformed blob reply`, { cause });
    }
    if (hashHex(reply.hash) !== hex) {
      throw new BlobError("BAD_RESPONSE", `peer ${key} answered for another blob`, { meta: { peer: key } });
    }
    if (reply.type === "blob.error") throw refusal(reply.reason, key, `blob ${hex}`, { hash: hex });
    const meta = { peer: key, hash: hex, announced: size, held: reply.totalSize };
    if (reply.totalSize > size) {
      throw new BlobError("TOO_LARGE", `blob ${hex} is larger than announced`, {
        details: `peer ${key} holds ${reply.totalSize} bytes, ${size} were announced`,
        meta,
      });
    }
    if (reply.totalSize < size) {
      throw new BlobError("SIZE_MISMATCH", `blob ${hex} is smaller than announced`, {
        details: `peer ${key} holds ${reply.totalSize} bytes, ${size} were announced`,
        meta,
      });
    }
    if (reply.offset !== offset || reply.data.byteLength !== length) {
      const code = reply.data.byteLength > length ? "TOO_LARGE" : "BAD_RESPONSE";
      throw new BlobError(code, `peer ${key} sent ${reply.data.byteLength} bytes at ${reply.offset}`, {
        details: `asked for ${length} bytes at ${offset}`,
        meta,
      });
    }
    return reply.data;
  }

  // ---- Weights ----

  /** The manifest of `weightsId` from the first of `fromPeers` that has a consistent one. */
  async fetchManifest(
    weightsId: Uint8Array | string,
    fromPeers: readonly RequestTarget[],
    options: { signal?: AbortSignal } = {},
  ): Promise<ShardManifest> {
    const id = hashHex(weightsId, "weights id");
    const attempts: Attempt[] = [];
    for (const peer of fromPeers) {
      const key = peerKey(peer);
      if (this.badPeers.has(key)) continue;
      try {
        const reply = await this.#weightsRequest(
          peer,
          { v: 1, type: "weights.manifest.request", weightsId: hexToBytes(id) },
          MAX_WEIGHTS_MANIFEST_BYTES,
          `the manifest of weights ${id}`,
          id,
          options.signal,
        );
        if (reply.type !== "weights.manifest" || hashHex(reply.weightsId) !== id) {
          throw new BlobError("BAD_RESPONSE", `peer ${key} did not answer with the manifest of ${id}`);
        }
        try {
          const { chunkSize, chunkCount, totalSize, files } = reply;
          return validateManifest({ version: 1, weightsId: id, chunkSize, chunkCount, totalSize, files });
        } catch (cause) {
          throw new BlobError("BAD_RESPONSE", `peer ${key} sent an inconsistent manifest`, { cause });
        }
      } catch (err) {
        const error = this.#perPeer(err, options.signal);
        if (error.code === "BAD_RESPONSE") this.#markBad(key, error);
        attempts.push({ peer: key, error });
      }
    }
    throw summarize(`fetching the manifest of weights ${id}`, attempts);
  }

  /**
   * Fetches every chunk of a model from its holders and writes the model's files in `options.dir`.
   * With a weights id instead of a manifest, the manifest is asked of the holders first.
   */
  async fetchWeights(
    target: ShardManifest | Uint8Array | string,
    holders: Holders,
    options: FetchWeightsOptions,
  ): Promise<FetchWeightsResult> {
    const manifest = await this.#manifestOf(target, holders, options.signal);
    const reassembler = new Reassembler(manifest, options.dir);
    try {
      const peers = await this.#fetchChunks(
        manifest,
        reassembler.missing(),
        holders,
        (i, bytes, proof) => reassembler.add(i, bytes, proof),
        options,
      );
      const files = await reassembler.finish();
      return { manifest, dir: options.dir, files, peers };
    } catch (err) {
      await reassembler.abort();
      throw err;
    }
  }

  /**
   * Fetches chosen chunks into a chunk store (a storage node taking over chunks placed on it, say).
   * Chunks already stored are skipped.
   */
  async fetchChunksInto(
    store: ChunkStore,
    target: ShardManifest | Uint8Array | string,
    indices: Iterable<number>,
    holders: Holders,
    options: FetchChunksOptions = {},
  ): Promise<Record<string, PeerStats>> {
    const manifest = await this.#manifestOf(target, holders, options.signal);
    await store.putManifest(manifest);
    const wanted = [...new Set(indices)].filter((i) => !store.has(manifest.weightsId, i));
    for (const i of wanted) chunkLocation(manifest, i);
    return this.#fetchChunks(
      manifest,
      wanted,
      holders,
      (i, bytes, proof) => store.put(manifest.weightsId, i, bytes, proof),
      options,
    );
  }

  async #manifestOf(
    target: ShardManifest | Uint8Array | string,
    holders: Holders,
    signal: AbortSignal | undefined,
  ): Promise<ShardManifest> {
    let manifest: ShardManifest;
    if (typeof target === "string" || target instanceof Uint8Array) {
      // Holders of many chunks first: they are the likeliest to hold the manifest too.
      const count = new Map<string, { peer: RequestTarget; n: number }>();
      for (const list of holders.values()) {
        for (const peer of list) {
          const entry = count.get(peerKey(peer)) ?? { peer, n: 0 };
          entry.n++;
          count.set(peerKey(peer), entry);
        }
      }
      const peers = [...count.values()].sort((a, b) => b.n - a.n).map((e) => e.peer);
      manifest = await this.fetchManifest(target, peers, signal ? { signal } : {});
    } else {
      manifest = validateManifest(target);
    }
    if (manifest.chunkSize > MAX_TRANSFER_CHUNK_BYTES) {
      throw new BlobError(
        "INVALID_ARGUMENT",
        `chunks of ${manifest.chunkSize} bytes are too large to transfer`,
        {
          details: `the limit is ${MAX_TRANSFER_CHUNK_BYTES} bytes`,
        },
      );
    }
    return manifest;
  }

  async #fetchChunks(
    manifest: ShardManifest,
    indices: readonly number[],
    holders: Holders,
    accept: (index: number, bytes: Uint8Array, proof: Uint8Array[]) => Promise<void>,
    options: FetchChunksOptions,
  ): Promise<Record<string, PeerStats>> {
    const id = manifest.weightsId;
    const queue = [...indices];
    const peers: Record<string, PeerStats> = {};
    const inflight = new Map<string, number>();
    const transportFailures = new Map<string, number>();
    const progress: FetchProgress = {
      chunksDone: 0,
      chunksTotal: indices.length,
      bytesDone: 0,
      bytesTotal: indices.reduce((n, i) => n + chunkLocation(manifest, i).length, 0),
      peers,
    };
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    let failure: unknown;
    // Chunks are written one at a time (a Reassembler opens each file on its first chunk).
    let writing: Promise<void> = Promise.resolve();
    const write = (index: number, bytes: Uint8Array, proof: Uint8Array[]): Promise<void> => {
      const next = writing.then(() => accept(index, bytes, proof));
      writing = next.catch(() => {});
      return next;
    };
    const statsOf = (key: string): PeerStats => {
      peers[key] ??= { chunks: 0, bytes: 0, failures: 0 };
      return peers[key];
    };
    const report = () => options.onProgress?.({ ...progress, peers: structuredClone(peers) });

    const fetchOne = async (index: number): Promise<void> => {
      const tried = new Set<string>();
      const attempts: Attempt[] = [];
      let busyRetries = 0;
      const list = holders.get(index) ?? [];
      for (;;) {
        if (signal.aborted) throw aborted(signal);
        const candidates = list.filter((p) => {
          const k = peerKey(p);
          return (
            !tried.has(k) && !this.badPeers.has(k) && (transportFailures.get(k) ?? 0) < MAX_TRANSPORT_FAILURES
          );
        });
        if (candidates.length === 0) {
          throw summarize(`fetching chunk ${index} of weights ${id}`, attempts, list.length === 0);
        }
        // The least busy holder, then the one that has served least: spreads the load.
        let peer = candidates[0]!;
        for (const p of candidates) {
          const a = inflight.get(peerKey(p)) ?? 0;
          const b = inflight.get(peerKey(peer)) ?? 0;
          if (a < b || (a === b && statsOf(peerKey(p)).chunks < statsOf(peerKey(peer)).chunks)) peer = p;
        }
        const key = peerKey(peer);
        inflight.set(key, (inflight.get(key) ?? 0) + 1);
        try {
          const reply = await this.#chunk(peer, manifest, index, signal);
          transportFailures.set(key, 0);
          if (!verifyChunk(manifest, index, reply.data, reply.proof)) {
            throw new BlobError("INVALID_CHUNK", `chunk ${index} from peer ${key} failed its proof`, {
              details: `it does not match weights id ${id}`,
              meta: { weightsId: id, index, peer: key },
            });
          }
          await write(index, reply.data, reply.proof);
          const s = statsOf(key);
          s.chunks++;
          s.bytes += reply.data.byteLength;
          progress.chunksDone++;
          progress.bytesDone += reply.data.byteLength;
          report();
          return;
        } catch (err) {
          if (!isPeerFault(err) || signal.aborted) throw err;
          const error = err as DeepshardError;
          statsOf(key).failures++;
          attempts.push({ peer: key, error });
          options.onFailure?.({ index, peer: key, error });
          this.#log.debug("chunk failed", { peer: key, weightsId: id, index, error: error.shortMessage });
          if (error.code === "INVALID_CHUNK" || error.code === "BAD_RESPONSE") {
            this.#markBad(key, error);
          } else if (error.code === "BUSY" && busyRetries < MAX_BUSY_RETRIES) {
            busyRetries++;
            await sleep(50 * busyRetries, signal);
            continue;
          } else if (error instanceof HostError) {
            transportFailures.set(key, (transportFailures.get(key) ?? 0) + 1);
          }
          tried.add(key);
        } finally {
          inflight.set(key, (inflight.get(key) ?? 1) - 1);
        }
      }
    };

    const worker = async () => {
      while (failure === undefined) {
        const index = queue.shift();
        if (index === undefined) return;
        try {
          await fetchOne(index);
        } catch (err) {
          failure ??= err;
          stop.abort(err);
        }
      }
    };
    report();
    const n = Math.min(options.concurrency ?? this.#concurrency, queue.length);
    await Promise.all(Array.from({ length: n }, worker));
    await writing;
    if (failure !== undefined) {
      if (failure instanceof DeepshardError) throw failure;
      if (options.signal?.aborted) throw aborted(options.signal);
      throw new BlobError("IO", "fetching the weights failed", { cause: failure });
    }
    return peers;
  }

  async #chunk(
    peer: RequestTarget,
    manifest: ShardManifest,
    index: number,
    signal: AbortSignal,
  ): Promise<WeightsChunk> {
    const id = manifest.weightsId;
    const key = peerKey(peer);
    const reply = await this.#weightsRequest(
      peer,
      { v: 1, type: "weights.chunk.request", weightsId: hexToBytes(id), index },
      manifest.chunkSize + WEIGHTS_CHUNK_OVERHEAD,
      `chunk ${index} of weights ${id}`,
      id,
      signal,
    );
    if (reply.type !== "weights.chunk" || hashHex(reply.weightsId) !== id || reply.index !== index) {
      throw new BlobError("BAD_RESPONSE", `peer ${key} did not answer with chunk ${index}`, {
        meta: { peer: key, weightsId: id, index },
      });
    }
    return reply;
  }

  async #weightsRequest(
    peer: RequestTarget,
    request: WeightsRequest,
    maxResponseBytes: number,
    what: string,
    weightsId: string,
    signal: AbortSignal | undefined,
  ): Promise<WeightsResponse> {
    const raw = await this.host.request(
      peer,
      weightsProtocol(this.#chainId),
      weightsRequestCodec.encode(request),
      { timeoutMs: this.#timeoutMs, maxResponseBytes, ...(signal ? { signal } : {}) },
    );
    const key = peerKey(peer);
    let reply: WeightsResponse;
    try {
      reply = weightsResponseCodec.decode(raw);
    } catch (cause) {
      throw new BlobError("BAD_RESPONSE", `peer ${key} sent a malformed reply for ${what}`, { cause });
    }
    if (reply.type === "weights.error") throw refusal(reply.reason, key, what, { weightsId });
    return reply;
  }

  /** A per-peer failure as a DeepshardError; rethrows what ends the whole fetch (abort, host stopped). */
  #perPeer(err: unknown, signal: AbortSignal | undefined): DeepshardError {
    if (signal?.aborted) throw aborted(signal);
    if (isPeerFault(err)) return err as DeepshardError;
    throw err;
  }

  #markBad(peer: string, error: DeepshardError): void {
    if (this.badPeers.has(peer)) return;
    this.badPeers.add(peer);
    this.#log.warn("peer sent bad data; not asking it again", { peer, error: error.shortMessage });
  }
}

/** Whether another peer might do better: everything but our own host stopping or a local failure. */
function isPeerFault(err: unknown): boolean {
  if (err instanceof HostError) return err.code !== "NOT_RUNNING" && err.code !== "ABORTED";
  if (err instanceof BlobError) return err.code !== "IO" && err.code !== "ABORTED";
  return false;
}

function refusal(
  reason: "not_found" | "no_license" | "bad_range" | "busy",
  peer: string,
  what: string,
  meta: Record<string, unknown>,
): BlobError {
  const m = { ...meta, peer, reason };
  switch (reason) {
    case "no_license":
      return new BlobError("NO_LICENSE", `peer ${peer} refused ${what}: no license`, {
        details: "holders serve weight chunks only to accounts holding a license: buy one (weights buy)",
        meta: m,
      });
    case "not_found":
      return new BlobError("NOT_FOUND", `peer ${peer} does not hold ${what}`, { meta: m });
    case "bad_range":
      return new BlobError("BAD_RANGE", `peer ${peer} refused the range of ${what}`, { meta: m });
    case "busy":
      return new BlobError("BUSY", `peer ${peer} is busy`, { meta: m });
  }
}

/**
 * The error when no peer delivered: the shared reason when every peer gave the same one (NO_LICENSE
 * reads better than a list), else UNAVAILABLE listing each attempt.
 */
function summarize(what: string, attempts: readonly Attempt[], noHolders = false): BlobError {
  const details = attempts.map((a) => `${a.peer}: ${a.error.code} ${a.error.shortMessage}`).join("\n");
  const meta = { attempts: attempts.map((a) => ({ peer: a.peer, code: a.error.code })) };
  if (attempts.length === 0) {
    return new BlobError("UNAVAILABLE", `${what}: ${noHolders ? "no known holder" : "no peer left to ask"}`, {
      meta,
    });
  }
  const codes = new Set(attempts.map((a) => a.error.code));
  const first = attempts[0]!.error;
  if (codes.size === 1 && SHARED_REASONS.has(first.code)) {
    return new BlobError(first.code as BlobErrorCode, first.shortMessage, {
      details: attempts.length > 1 ? details : first.details,
      cause: first,
      meta: { ...first.meta, ...meta },
    });
  }
  return new BlobError("UNAVAILABLE", `${what} failed at every peer`, { details, cause: first, meta });
}

function hashMismatch(expected: string, actual: string): BlobError {
  return new BlobError("HASH_MISMATCH", "blob does not match its content hash", {
    details: `expected ${expected}, got ${actual}`,
    meta: { expected, actual },
  });
}

function aborted(signal: AbortSignal): DeepshardError {
  const reason: unknown = signal.reason;
  if (reason instanceof DeepshardError) return reason;
  return new BlobError("ABORTED", "the fetch was aborted", { cause: reason });
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new BlobError("INVALID_ARGUMENT", `a blob size must be a non-negative integer, got ${size}`);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
