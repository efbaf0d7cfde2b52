/**
 * The pool of transactions waiting for a block. A transaction enters only after its signature
 * (once per node, through the SignatureCache) and the application's stateful check passed; each
 * sender's transactions leave in nonce order. A transaction whose nonce is ahead of the sender's
 * next one is held (not dropped) until the gap fills, within bounds. Everything is bounded: count
 * and bytes per sender and in total, the nonce distance a held transaction may have, and the memory
 * of committed hashes that refuses replays.
 */
import type { SignedTx } from "@deepshard/protocol";
import { DeepshardError } from "@deepshard/protocol";
import type { TxSource } from "../consensus/app.ts";
import { SignatureCache } from "./signatures.ts";
import { txInfo } from "./tx-info.ts";

export type MempoolErrorCode =
  | "TX_BAD_SIGNATURE"
  /** Committed already (a replay), or its nonce was used. */
  | "TX_COMMITTED"
  /** Another transaction of the sender with the same nonce is pooled. */
  | "TX_NONCE_TAKEN"
  /** The nonce is too far ahead of the sender's next one to be held. */
  | "TX_NONCE_TOO_FAR"
  | "TX_TOO_LARGE"
  | "MEMPOOL_FULL"
  | "SENDER_FULL"
  /** The application refused it; `cause` is its error. */
  | "TX_REFUSED";

export class MempoolError extends DeepshardError<MempoolErrorCode> {
  override name = "MempoolError";
}

/** What the mempool needs from the application (the ledger binds its state machine). */
export interface MempoolApp {
  /** Nonce of the sender's last committed transaction (0n for an account without any). */
  committedNonce(sender: Uint8Array): bigint;
  /**
   * Throws unless `tx` is acceptable on the committed state once `ahead` (the same sender's pooled
   * transactions with the nonces just below it, in order) have run.
   */
  checkTx(tx: SignedTx, ahead: readonly SignedTx[]): void;
}

export interface MempoolLimits {
  maxTxs: number;
  maxBytes: number;
  maxTxsPerSender: number;
  maxBytesPerSender: number;
  /** A transaction is held only while its nonce is at most this far beyond the sender's committed nonce. */
  maxNonceAhead: number;
  maxTxBytes: number;
  /** Committed transaction hashes remembered to refuse replays of them. */
  committedMemory: number;
  /** Every this many blocks all senders are re-checked; in between, only those a block touched. */
  fullRecheckInterval: number;
}

export const DEFAULT_MEMPOOL_LIMITS: MempoolLimits = {
  maxTxs: 50_000,
  maxBytes: 64 * 1024 * 1024,
  maxTxsPerSender: 1024,
  maxBytesPerSender: 4 * 1024 * 1024,
  maxNonceAhead: 1024,
  maxTxBytes: 64 * 1024,
  committedMemory: 200_000,
  fullRecheckInterval: 10,
};

interface Entry {
  tx: SignedTx;
  id: string;
  size: number;
  sender: string;
  nonce: bigint;
  /** Passed the stateful check with every lower nonce of its sender pooled and checked. */
  ready: boolean;
  /** When it entered, in milliseconds (for callers measuring latency). */
  addedAt: number;
}

interface Sender {
  key: Uint8Array;
  byNonce: Map<bigint, Entry>;
  bytes: number;
  /** The ready transactions, in nonce order from the committed nonce + 1 on. */
  ready: SignedTx[];
}

export type AddStatus = "added" | "held" | "known";

/** A pooled transaction as others may see it. */
export interface PooledTx {
  readonly tx: SignedTx;
  readonly id: string;
  readonly addedAt: number;
}

export interface MempoolOptions {
  app: MempoolApp;
  signatures?: SignatureCache | undefined;
  limits?: Partial<MempoolLimits> | undefined;
  now?: (() => number) | undefined;
}

export class Mempool implements TxSource<SignedTx> {
  readonly signatures: SignatureCache;
  readonly limits: MempoolLimits;
  private readonly app: MempoolApp;
  private readonly now: () => number;
  /** Every pooled entry by tx id, in arrival order. */
  private readonly entries = new Map<string, Entry>();
  private readonly senders = new Map<string, Sender>();
  private readonly committed = new Set<string>();
  private bytes = 0;
  private blocks = 0;
  private readonly addListeners = new Set<(tx: SignedTx) => void>();

  constructor(options: MempoolOptions) {
    this.app = options.app;
    this.signatures = options.signatures ?? new SignatureCache();
    this.limits = { ...DEFAULT_MEMPOOL_LIMITS, ...options.limits };
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** Transactions ready for a block (every lower nonce of their sender committed or ready). */
  get readyCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.ready) n++;
    return n;
  }

  has(tx: SignedTx): boolean {
    return this.entries.has(txInfo(tx).id);
  }

  /** When `tx` entered the pool, if it is pooled. */
  addedAt(tx: SignedTx): number | undefined {
    return this.entries.get(txInfo(tx).id)?.addedAt;
  }

  /** Every pooled transaction, oldest first; the pool must not change while this is iterated. */
  pooled(): IterableIterator<PooledTx> {
    return this.entries.values();
  }

  /** Called for every transaction that enters the pool. */
  onAdd(listener: (tx: SignedTx) => void): () => void {
    this.addListeners.add(listener);
    return () => this.addListeners.delete(listener);
  }

  /** The pooled transaction with this id (hash), if any. */
  get(hash: Uint8Array): SignedTx | undefined {
    return this.entries.get(Buffer.from(hash).toString("hex"))?.tx;
  }

  /** The pooled transaction with this id (lower-case hex hash), if any. */
  getById(id: string): SignedTx | undefined {
    return this.entries.get(id)?.tx;
  }

  /** The nonce that follows the sender's committed and contiguously pooled transactions. */
  nextNonce(sender: Uint8Array): bigint {
    let nonce = this.app.committedNonce(sender) + 1n;
    const pooled = this.senders.get(Buffer.from(sender).toString("hex"));
    while (pooled?.byNonce.has(nonce)) nonce++;
    return nonce;
  }

  /**
   * Adds a transaction: "added" when it is ready for a block, "held" when it waits for a lower
   * nonce, "known" when it is already pooled. Throws a MempoolError when it is refused.
   */
  add(tx: SignedTx): AddStatus {
    const { id, size } = txInfo(tx);
    if (this.entries.has(id)) return "known";
    if (this.committed.has(id))
      throw new MempoolError("TX_COMMITTED", "the transaction is already committed");
    if (size > this.limits.maxTxBytes) {
      throw new MempoolError("TX_TOO_LARGE", `the transaction has ${size} bytes`, {
        meta: { size, limit: this.limits.maxTxBytes },
      });
    }
    const senderId = Buffer.from(tx.signer).toString("hex");
    const nonce = tx.payload.nonce;
    const committed = this.app.committedNonce(tx.signer);
    if (nonce <= committed) {
      throw new MempoolError("TX_COMMITTED", `nonce ${nonce} is already used`, {
        meta: { nonce, committed },
      });
    }
    if (nonce > committed + BigInt(this.limits.maxNonceAhead)) {
      throw new MempoolError("TX_NONCE_TOO_FAR", `nonce ${nonce} is too far ahead of ${committed + 1n}`, {
        meta: { nonce, expected: committed + 1n },
      });
    }
    const sender = this.senders.get(senderId);
    if (sender?.byNonce.has(nonce)) {
      throw new MempoolError("TX_NONCE_TAKEN", `another transaction with nonce ${nonce} is pooled`);
    }
    if (
      (sender?.byNonce.size ?? 0) >= this.limits.maxTxsPerSender ||
      (sender?.bytes ?? 0) + size > this.limits.maxBytesPerSender
    ) {
      throw new MempoolError("SENDER_FULL", "the sender has too many pooled transactions");
    }
    if (this.entries.size >= this.limits.maxTxs || this.bytes + size > this.limits.maxBytes) {
      throw new MempoolError("MEMPOOL_FULL", "the mempool is full");
    }
    if (!this.signatures.verify(tx)) throw new MempoolError("TX_BAD_SIGNATURE", "the signature is invalid");
    // Ready only if every nonce below it is pooled and ready: then the application checks it on top
    // of them. Otherwise it is held, and checked when the gap closes.
    const ahead = sender?.ready ?? [];
    const contiguous = nonce === committed + 1n + BigInt(ahead.length);
    if (contiguous) {
      try {
        this.app.checkTx(tx, ahead);
      } catch (cause) {
        throw new MempoolError("TX_REFUSED", "the application refused the transaction", {
          cause,
          details: cause instanceof Error ? cause.message : String(cause),
        });
      }
    }
    const entry: Entry = { tx, id, size, sender: senderId, nonce, ready: contiguous, addedAt: this.now() };
    const pooled = this.insert(entry);
    if (contiguous) {
      pooled.ready.push(tx);
      this.promote(pooled, nonce + 1n);
    }
    for (const listener of this.addListeners) listener(tx);
    return contiguous ? "added" : "held";
  }

  /**
   * Up to `max` ready transactions (and at most `maxBytes` of them) for a proposal: in arrival
   * order, except that a sender's transactions always follow their nonces.
   */
  reap(max: number, maxBytes = Number.POSITIVE_INFINITY): SignedTx[] {
    const out: SignedTx[] = [];
    const taken = new Set<string>();
    const next = new Map<string, bigint>();
    let bytes = 0;
    const full = () => out.length >= max;
    for (const e of this.entries.values()) {
      if (full()) break;
      if (!e.ready || taken.has(e.id)) continue;
      let expected = next.get(e.sender);
      if (expected === undefined) expected = this.app.committedNonce(this.senders.get(e.sender)!.key) + 1n;
      if (e.nonce !== expected) continue;
      // Take it and the ready transactions that follow it in nonce order.
      const sender = this.senders.get(e.sender)!;
      let n = e.nonce;
      for (let f = sender.byNonce.get(n); f?.ready && !full(); f = sender.byNonce.get(++n)) {
        if (bytes + f.size > maxBytes) return out;
        bytes += f.size;
        out.push(f.tx);
        taken.add(f.id);
      }
      next.set(e.sender, n);
    }
    return out;
  }

  /** After a committed block: its transactions leave, replays of them are refused, the rest is re-checked. */
  update(_height: number, txs: readonly SignedTx[]): void {
    const touched = new Set<string>();
    for (const tx of txs) {
      const { id } = txInfo(tx);
      this.rememberCommitted(id);
      const entry = this.entries.get(id);
      if (entry) this.remove(entry);
      touched.add(Buffer.from(tx.signer).toString("hex"));
    }
    this.blocks++;
    const all = this.blocks % this.limits.fullRecheckInterval === 0;
    for (const senderId of all ? [...this.senders.keys()] : touched) this.recheck(senderId);
  }

  /** Drops what the committed state made invalid and marks what is still good as ready. */
  private recheck(senderId: string): void {
    const sender = this.senders.get(senderId);
    if (!sender) return;
    const committed = this.app.committedNonce(sender.key);
    for (const e of [...sender.byNonce.values()]) if (e.nonce <= committed) this.remove(e);
    for (const e of sender.byNonce.values()) e.ready = false;
    sender.ready = [];
    this.promote(sender, committed + 1n);
  }

  /** Checks the sender's held transactions from `nonce` on while they are contiguous; drops the first that fails. */
  private promote(sender: Sender, nonce: bigint): void {
    for (let e = sender.byNonce.get(nonce); e; e = sender.byNonce.get(++nonce)) {
      try {
        this.app.checkTx(e.tx, sender.ready);
      } catch {
        this.remove(e);
        return;
      }
      e.ready = true;
      sender.ready.push(e.tx);
    }
  }

  private insert(entry: Entry): Sender {
    let sender = this.senders.get(entry.sender);
    if (!sender) {
      sender = { key: entry.tx.signer, byNonce: new Map(), bytes: 0, ready: [] };
      this.senders.set(entry.sender, sender);
    }
    sender.byNonce.set(entry.nonce, entry);
    sender.bytes += entry.size;
    this.entries.set(entry.id, entry);
    this.bytes += entry.size;
    return sender;
  }

  private remove(entry: Entry): void {
    if (!this.entries.delete(entry.id)) return;
    this.bytes -= entry.size;
    const sender = this.senders.get(entry.sender)!;
    sender.byNonce.delete(entry.nonce);
    sender.bytes -= entry.size;
    // A ready entry leaves only through a committed block, and `recheck` rebuilds that sender's list.
    if (sender.byNonce.size === 0) this.senders.delete(entry.sender);
  }

  private rememberCommitted(id: string): void {
    if (this.committed.size >= this.limits.committedMemory) {
      const oldest = this.committed.values().next().value;
      if (oldest !== undefined) this.committed.delete(oldest);
    }
    this.committed.add(id);
  }
}
