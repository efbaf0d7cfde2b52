/**
 * A deterministic in-memory network for simulating consensus: virtual time, a seeded PRNG, message
 * loss, random delays (hence reordering) and partitions that can be set and healed at any virtual
 * time. The same seed gives the same run: events fire in (time, insertion) order, and after each
 * one the scheduler waits until all the asynchronous work it started has finished.
 */
import { setImmediate as nextMacrotask } from "node:timers/promises";
import type { Block, SyncedBlock } from "./block.ts";
import type { ConsensusTransport, Timer } from "./transport.ts";
import type { ConsensusMessage } from "./types.ts";

/** sfc32: small, fast, and good enough to drive a simulation. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 2 ** 32;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }
}

interface ScheduledEvent {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Virtual time: a priority queue of callbacks, run one at a time. */
export class SimScheduler implements Timer {
  private time = 0;
  private seq = 0;
  private heap: ScheduledEvent[] = [];
  private readonly pending = new Set<Promise<void>>();

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, delayMs: number): () => void {
    const event: ScheduledEvent = {
      at: this.time + Math.max(0, delayMs),
      seq: this.seq++,
      fn,
      cancelled: false,
    };
    this.push(event);
    return () => {
      event.cancelled = true;
    };
  }

  track(work: Promise<unknown>): void {
    const entry: Promise<void> = work.then(
      () => {
        this.pending.delete(entry);
      },
      () => {
        this.pending.delete(entry);
      },
    );
    this.pending.add(entry);
  }

  /**
   * Runs events until `done()` holds (checked after each one) or virtual time would pass
   * `untilMs`. Returns true when `done()` held.
   */
  async run(untilMs: number, done: () => boolean = () => false): Promise<boolean> {
    await this.settle();
    if (done()) return true;
    for (;;) {
      const event = this.pop();
      if (!event || event.at > untilMs) {
        if (event) this.push(event);
        this.time = Math.max(this.time, untilMs);
        return done();
      }
      if (event.cancelled) continue;
      this.time = event.at;
      event.fn();
      await this.settle();
      if (done()) return true;
    }
  }

  /** Waits until every tracked piece of work, and whatever it started, has finished. */
  async settle(): Promise<void> {
    for (;;) {
      await nextMacrotask();
      if (this.pending.size === 0) return;
      await Promise.all(this.pending);
    }
  }

  private push(event: ScheduledEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): ScheduledEvent | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export interface SimNetworkOptions {
  seed: number;
  /** Probability that one delivery (or a sync request or reply) is lost. */
  loss?: number;
  /** Each delivery takes a uniform delay in [minDelayMs, maxDelayMs]; spread reorders messages. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** A sync request without an answer rejects after this long. */
  requestTimeoutMs?: number;
}

export interface SimNetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
}

type RequestHandler<Tx> = (fromHeight: number, maxBlocks: number) => Promise<SyncedBlock<Tx>[]>;

interface SimPeer<Tx> {
  onMessage: ((message: ConsensusMessage<Block<Tx>>, from: string) => void) | undefined;
  onRequest: RequestHandler<Tx> | undefined;
}

export class SimNetwork<Tx> {
  readonly scheduler = new SimScheduler();
  readonly rng: Prng;
  readonly stats: SimNetworkStats = { sent: 0, delivered: 0, dropped: 0 };
  loss: number;
  minDelayMs: number;
  maxDelayMs: number;
  private readonly requestTimeoutMs: number;
  private readonly peers = new Map<string, SimPeer<Tx>>();
  /** Peer id → group; undefined when the network is whole. */
  private groups: Map<string, number> | undefined;

  constructor(options: SimNetworkOptions) {
    this.rng = new Prng(options.seed);
    this.loss = options.loss ?? 0;
    this.minDelayMs = options.minDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 50;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 2000;
  }

  /** The transport of one node, registered under `id`. */
  transport(id: string): SimTransport<Tx> {
    const peer: SimPeer<Tx> = { onMessage: undefined, onRequest: undefined };
    this.peers.set(id, peer);
    return new SimTransport(this, id, peer);
  }

  /** Only peers in the same group can reach each other; peers in no group are isolated. */
  partition(groups: readonly (readonly string[])[]): void {
    this.groups = new Map();
    groups.forEach((group, i) => {
      for (const id of group) this.groups!.set(id, i);
    });
  }

  heal(): void {
    this.groups = undefined;
  }

  /** Runs `fn` at virtual time `atMs` (e.g. to partition or heal). */
  at(atMs: number, fn: () => void): void {
    this.scheduler.setTimeout(fn, atMs - this.scheduler.now());
  }

  canReach(from: string, to: string): boolean {
    if (!this.groups) return true;
    const a = this.groups.get(from);
    return a !== undefined && a === this.groups.get(to);
  }

  peerIds(): string[] {
    return [...this.peers.keys()];
  }

  /** One delivery: lost, or handed to `to` after a random delay if the two can still reach each other. */
  send(from: string, to: string, message: ConsensusMessage<Block<Tx>>): void {
    this.stats.sent++;
    if (!this.canReach(from, to) || this.lost()) {
      this.stats.dropped++;
      return;
    }
    this.scheduler.setTimeout(() => {
      const peer = this.peers.get(to);
      if (!peer?.onMessage || !this.canReach(from, to)) {
        this.stats.dropped++;
        return;
      }
      this.stats.delivered++;
      peer.onMessage(message, from);
    }, this.delay());
  }

  request(from: string, to: string, fromHeight: number, maxBlocks: number): Promise<SyncedBlock<Tx>[]> {
    return new Promise((resolve, reject) => {
      let answered = false;
      const cancelTimeout = this.scheduler.setTimeout(() => {
        if (answered) return;
        answered = true;
        reject(new Error(`sync request to ${to} timed out`));
      }, this.requestTimeoutMs);
      if (!this.canReach(from, to) || this.lost()) return;
      this.scheduler.setTimeout(() => {
        const handler = this.peers.get(to)?.onRequest;
        if (!handler || !this.canReach(from, to)) return;
        const work = handler(fromHeight, maxBlocks).then((blocks) => {
          if (!this.canReach(to, from) || this.lost()) return;
          this.scheduler.setTimeout(() => {
            if (answered || !this.canReach(to, from)) return;
            answered = true;
            cancelTimeout();
            resolve(blocks);
          }, this.delay());
        });
        this.scheduler.track(work);
      }, this.delay());
    });
  }

  private lost(): boolean {
    return this.loss > 0 && this.rng.float() < this.loss;
  }

  private delay(): number {
    return this.rng.int(this.minDelayMs, this.maxDelayMs);
  }
}

export class SimTransport<Tx> implements ConsensusTransport<Tx> {
  readonly id: string;
  private readonly network: SimNetwork<Tx>;
  private readonly peer: SimPeer<Tx>;

  constructor(network: SimNetwork<Tx>, id: string, peer: SimPeer<Tx>) {
    this.network = network;
    this.id = id;
    this.peer = peer;
  }

  broadcast(message: ConsensusMessage<Block<Tx>>): void {
    for (const to of this.network.peerIds()) if (to !== this.id) this.network.send(this.id, to, message);
  }

  /** Sends to one peer only (what a Byzantine node does to show different peers different votes). */
  sendTo(to: string, message: ConsensusMessage<Block<Tx>>): void {
    this.network.send(this.id, to, message);
  }

  onMessage(handler: (message: ConsensusMessage<Block<Tx>>, from: string) => void): void {
    this.peer.onMessage = handler;
  }

  requestBlocks(peer: string, fromHeight: number, maxBlocks: number): Promise<SyncedBlock<Tx>[]> {
    return this.network.request(this.id, peer, fromHeight, maxBlocks);
  }

  onBlocksRequest(handler: RequestHandler<Tx>): void {
    this.peer.onRequest = handler;
  }
}
