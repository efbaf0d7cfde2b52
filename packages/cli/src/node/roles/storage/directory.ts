/**
 * Who holds which weight chunks, and who stores: every node running the trainer, storage or
 * inference role publishes a small announcement on the gossip topic `weights-holders` (its roles,
 * its listen addresses, and the chunk ranges of each weights id in its chunk store), at start,
 * when its holdings change, and every `announceIntervalMs`. Gossipsub signs each message with the
 * author's peer key, and the peer key is the account key, so an announcement speaks for an account.
 *
 * The storage set of a weights id (the nodes rendezvous hashing places its chunks on) is: the peers
 * whose announcement is fresh and names the storage role, plus this node when it stores, keeping
 * those the holders' license rule lets fetch the chunks (an active validator or a license holder for
 * that weights id; see the daemon's `canServe`). A peer whose last announcement is older than
 * `goneAfterMs` has left: the storage nodes then repair. Claims are not trusted beyond routing:
 * every chunk is verified against the weights id when it arrives.
 */
import { MAX_CHUNK_COUNT, publicKeyFromPeerId } from "@deepshard/protocol";
import { gossipTopic, type Host, type RequestTarget } from "@deepshard/protocol/host";
import type { ChunkStore } from "../../blobs/index.ts";
import { ROLES } from "../../config.ts";
import type { Logger } from "../../logger.ts";
import type { NodeLedger, RoleContext } from "../../service.ts";

/** Holders of every chunk of a weights id the storage role keeps (the seed's overlapping copies). */
export const REPLICATION = 2;
export const DEFAULT_ANNOUNCE_INTERVAL_MS = 5_000;
const TOPIC = "weights-holders";
const MAX_ANNOUNCEMENT_BYTES = 128 * 1024;
const MAX_HOLDINGS = 64;
const MAX_RANGES = 2048;
const MAX_ADDRS = 16;

/** Chunk indices as sorted, disjoint half-open ranges [start, end). */
export type Ranges = readonly (readonly [number, number])[];

export interface Holding {
  weightsId: string;
  chunkCount: number;
  ranges: Ranges;
}

interface Announcement {
  v: 1;
  roles: string[];
  addrs: string[];
  holdings: Holding[];
}

export interface PeerHoldings {
  peerId: string;
  /** The account (hex public key) behind the peer id. */
  account: string;
  roles: readonly string[];
  addrs: readonly string[];
  holdings: ReadonlyMap<string, Holding>;
  /** Date.now() of the last announcement. */
  lastSeen: number;
}

export interface DirectoryOptions {
  /** How often this node announces (default 5 s); a peer silent for 4 intervals and no longer connected has left. */
  announceIntervalMs?: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** Sorted indices → ranges. */
export function toRanges(indices: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const i of indices) {
    const last = out[out.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}

export function inRanges(ranges: Ranges, index: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [start, end] = ranges[mid]!;
    if (index < start) hi = mid - 1;
    else if (index >= end) lo = mid + 1;
    else return true;
  }
  return false;
}

export function rangesSize(ranges: Ranges): number {
  return ranges.reduce((n, [s, e]) => n + e - s, 0);
}

/** Whether `account` (hex) may receive chunks of `weightsId`: the daemon's default serving rule. */
export function mayHold(ledger: NodeLedger, account: string, weightsId: string): boolean {
  const state = ledger.state();
  if (state.tables.licenses.has(`${account}/${weightsId}`)) return true;
  return state.tables.meta.get("meta")!.validators.some((v) => v.address === account);
}

class Invalid extends Error {}

/** Parses an announcement from the wire; throws on anything malformed. */
function parseAnnouncement(data: Uint8Array): Announcement {
  if (data.byteLength > MAX_ANNOUNCEMENT_BYTES) throw new Invalid("too large");
  const value: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  const o = value as Record<string, unknown>;
  if (typeof o !== "object" || o === null || o.v !== 1) throw new Invalid("not an announcement");
  const strings = (v: unknown, max: number, ok: (s: string) => boolean): string[] => {
    if (!Array.isArray(v) || v.length > max || !v.every((s) => typeof s === "string" && ok(s))) {
      throw new Invalid("bad list");
    }
    return v as string[];
  };
  const roles = strings(o.roles, ROLES.length, (s) => (ROLES as readonly string[]).includes(s));
  const addrs = strings(o.addrs, MAX_ADDRS, (s) => s.length <= 512 && s.startsWith("/"));
  if (!Array.isArray(o.holdings) || o.holdings.length > MAX_HOLDINGS) throw new Invalid("bad holdings");
  const holdings = o.holdings.map((h: unknown): Holding => {
    const x = h as Record<string, unknown>;
    const n = x?.chunkCount;
    if (
      typeof x?.weightsId !== "string" ||
      !/^[0-9a-f]{64}$/.test(x.weightsId) ||
      typeof n !== "number" ||
      !Number.isSafeInteger(n) ||
      n < 1 ||
      n > MAX_CHUNK_COUNT ||
      !Array.isArray(x.ranges) ||
      x.ranges.length > MAX_RANGES
    ) {
      throw new Invalid("bad holding");
    }
    let prev = -1;
    for (const r of x.ranges as unknown[]) {
      const [s, e] = Array.isArray(r) && r.length === 2 ? (r as unknown[]) : [];
      if (
        typeof s !== "number" ||
        typeof e !== "number" ||
        !Number.isSafeInteger(s) ||
        !Number.isSafeInteger(e) ||
        s <= prev ||
        e <= s ||
        e > n
      ) {
        throw new Invalid("bad range");
      }
      prev = e;
    }
    return { weightsId: x.weightsId, chunkCount: n, ranges: x.ranges as [number, number][] };
  });
  return { v: 1, roles, addrs, holdings };
}

interface Shared {
  directory: WeightsDirectory;
  refs: number;
}

const running = new WeakMap<Host, Shared>();

/** The holder directory of one node, shared by its roles (one gossip subscription per host). */
export class WeightsDirectory {
  readonly host: Host;
  readonly ledger: NodeLedger;
  readonly chunks: ChunkStore;
  readonly selfPeerId: string;
  readonly selfAccount: string;
  readonly announceIntervalMs: number;
  readonly goneAfterMs: number;
  readonly #roles: readonly string[];
  readonly #topic: string;
  readonly #peers = new Map<string, PeerHoldings>();
  readonly #listeners = new Set<() => void>();
  readonly #log: Logger;
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Timeout | undefined;
  #lastSent = "";

  private constructor(ctx: RoleContext, options: DirectoryOptions) {
    this.host = ctx.host;
    this.ledger = ctx.ledger;
    this.chunks = ctx.stores.chunks;
    this.selfPeerId = ctx.host.peerId.toString();
    this.selfAccount = hex(ctx.account.publicKey);
    this.announceIntervalMs = options.announceIntervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS;
    this.goneAfterMs = 4 * this.announceIntervalMs;
    this.#roles = ctx.config.roles.filter((r) => r === "storage" || r === "trainer" || r === "inference");
    this.#topic = gossipTopic(ctx.config.chainId, TOPIC);
    this.#log = ctx.logger;
  }

  /** The node's directory, started on first use; give it back with `release()`. */
  static acquire(ctx: RoleContext, options: DirectoryOptions = {}): WeightsDirectory {
    const shared = running.get(ctx.host);
    if (shared) {
      shared.refs++;
      return shared.directory;
    }
    const directory = new WeightsDirectory(ctx, options);
    running.set(ctx.host, { directory, refs: 1 });
    directory.#start();
    return directory;
  }

  /** The directory running on `host`, if a role of that node started one. */
  static of(host: Host): WeightsDirectory | undefined {
    return running.get(host)?.directory;
  }

  release(): void {
    const shared = running.get(this.host);
    if (!shared || shared.directory !== this) return;
    if (--shared.refs > 0) return;
    running.delete(this.host);
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    this.#unsubscribe?.();
    this.#listeners.clear();
  }

  #start(): void {
    this.#unsubscribe = this.host.subscribe(
      this.#topic,
      (data, from) => {
        if (from.toString() === this.selfPeerId) return "ignore";
        try {
          publicKeyFromPeerId(from);
          parseAnnouncement(data);
          return "accept";
        } catch {
          return "reject";
        }
      },
      (data, from) => this.#receive(data, from.toString()),
    );
    this.#timer = setInterval(() => {
      this.#expire();
      void this.#announce(true);
    }, this.announceIntervalMs);
    this.#timer.unref();
    this.announceSoon();
  }

  /** Calls `listener` whenever a peer's roles or holdings change, or a peer leaves. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Announces shortly (after the holdings changed); several calls make one announcement. */
  announceSoon(): void {
    if (this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      void this.#announce(false);
    }, 20);
    this.#soon.unref();
  }

  /** Peers heard from within `goneAfterMs`. */
  peers(): PeerHoldings[] {
    this.#expire();
    return [...this.#peers.values()];
  }

  /** This node's holdings, as it announces them. */
  selfHoldings(): Holding[] {
    return this.chunks
      .weights()
      .sort()
      .slice(0, MAX_HOLDINGS)
      .flatMap((weightsId) => {
        const manifest = this.chunks.manifest(weightsId)!;
        const ranges = toRanges(this.chunks.indices(weightsId)).slice(0, MAX_RANGES);
        return ranges.length > 0 ? [{ weightsId, chunkCount: manifest.chunkCount, ranges }] : [];
      });
  }

  /**
   * The storage set for `weightsId`: fresh peers announcing the storage role and this node when it
   * stores, each allowed to receive the chunks; sorted peer ids.
   */
  storageSet(weightsId: string): string[] {
    const set = this.peers()
      .filter((p) => p.roles.includes("storage") && mayHold(this.ledger, p.account, weightsId))
      .map((p) => p.peerId);
    if (this.#roles.includes("storage") && mayHold(this.ledger, this.selfAccount, weightsId)) {
      set.push(this.selfPeerId);
    }
    return set.sort();
  }

  /** How to reach a peer: its id when connected (the connection is reused), else an announced address. */
  target(peerId: string): RequestTarget {
    if (this.host.peers().some((p) => p.toString() === peerId)) return peerId;
    const addr = this.#peers.get(peerId)?.addrs.find((a) => a.endsWith(`/p2p/${peerId}`));
    return addr ?? peerId;
  }

  /** Chunk index → peers announcing it (not this node), the least loaded first. */
  holders(weightsId: string, chunkCount: number): Map<number, RequestTarget[]> {
    const peers = this.peers().filter((p) => p.holdings.get(weightsId)?.chunkCount === chunkCount);
    const out = new Map<number, RequestTarget[]>();
    for (let i = 0; i < chunkCount; i++) {
      const list = peers.filter((p) => inRanges(p.holdings.get(weightsId)!.ranges, i));
      if (list.length > 0)
        out.set(
          i,
          list.map((p) => this.target(p.peerId)),
        );
    }
    return out;
  }

  /** Peers announcing any chunk of `weightsId` (for its manifest). */
  announcers(weightsId: string): PeerHoldings[] {
    return this.peers().filter((p) => p.holdings.has(weightsId));
  }

  #receive(data: Uint8Array, peerId: string): void {
    let a: Announcement;
    let account: string;
    try {
      a = parseAnnouncement(data);
      account = hex(publicKeyFromPeerId(peerId));
    } catch {
      return;
    }
    const before = this.#peers.get(peerId);
    const holdings = new Map(a.holdings.map((h) => [h.weightsId, h]));
    this.#peers.set(peerId, {
      peerId,
      account,
      roles: a.roles,
      addrs: a.addrs,
      holdings,
      lastSeen: Date.now(),
    });
    const changed =
      !before ||
      before.roles.join() !== a.roles.join() ||
      JSON.stringify([...before.holdings.values()]) !== JSON.stringify(a.holdings);
    if (changed) this.#notify();
  }

  #expire(): void {
    const cutoff = Date.now() - this.goneAfterMs;
    let gone = false;
    let connected: Set<string> | undefined;
    for (const [id, p] of this.#peers) {
      if (p.lastSeen >= cutoff) continue;
      // Silent but still connected: its announcements are late (a busy machine, a gossip mesh
      // re-forming), not a departure; moving chunks for it would be wasted work.
      connected ??= new Set(this.host.peers().map(String));
      if (connected.has(id)) continue;
      this.#peers.delete(id);
      this.#log.info("weights holder gone", { peer: id, silentMs: Date.now() - p.lastSeen });
      gone = true;
    }
    if (gone) this.#notify();
  }

  #notify(): void {
    for (const l of this.#listeners) {
      try {
        l();
      } catch (err) {
        this.#log.warn("weights directory listener failed", { error: String(err) });
      }
    }
  }

  async #announce(periodic: boolean): Promise<void> {
    if (!running.has(this.host)) return;
    const announcement: Announcement = {
      v: 1,
      roles: [...this.#roles],
      addrs: this.host
        .addresses()
        .map(String)
        .slice(0, MAX_ADDRS)
        .filter((a) => a.length <= 512),
      holdings: this.selfHoldings(),
    };
    const text = JSON.stringify(announcement);
    // Between periodic announcements, only a change is worth a message.
    if (!periodic && text === this.#lastSent) return;
    this.#lastSent = text;
    try {
      await this.host.publish(this.#topic, new TextEncoder().encode(text));
    } catch (err) {
      this.#log.debug("weights announcement not sent", { error: String(err) });
    }
  }
}
