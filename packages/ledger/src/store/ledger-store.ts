/**
 * The ledger's persistent store: typed repositories over one DbController, one key prefix each.
 *
 *   0x01 head     "head"                      → {chainId, height, root, genesisRoot}
 *   0x02 blocks   height (u64 big-endian)     → {block bytes, state root after it}
 *   0x03 state    table ‖ 0x00 ‖ entry key    → canonical CBOR of the entry
 *   0x04 votes    (see vote-log.ts)
 *
 * Each committed block is ONE atomic, fsynced batch: the block, its state changes, and the new
 * head. On open, the state read back must hash to the head's root and the head's block must be
 * there; anything else is reported as STORE_CORRUPT, never repaired by a silent reset.
 */
import { decodeEntry, encodeEntry } from "../state/codec.ts";
import { toHex } from "../state/hashing.ts";
import {
  type LedgerState,
  type StateChanges,
  stateFromTables,
  TABLE_NAMES,
  type TableName,
  type TableTypes,
} from "../state/tables.ts";
import type { DbController, DbOp } from "./db.ts";
import { StoreError } from "./errors.ts";
import { VoteLog } from "./vote-log.ts";

const HEAD = 0x01;
const BLOCKS = 0x02;
const STATE = 0x03;
const HEAD_KEY = new Uint8Array([HEAD, ...new TextEncoder().encode("head")]);

export interface StoreHead {
  chainId: string;
  height: number;
  root: Uint8Array;
  genesisRoot: Uint8Array;
}

export interface StoredBlock {
  height: number;
  /** The block as the caller encoded it. */
  block: Uint8Array;
  /** The state root after the block. */
  root: Uint8Array;
}

/** One prefix, a key encoding and the canonical value codec. */
class Repository<K, V> {
  readonly prefix: number;
  private readonly encodeKey: (key: K) => Uint8Array;
  private readonly what: string;

  constructor(prefix: number, encodeKey: (key: K) => Uint8Array, what: string) {
    this.prefix = prefix;
    this.encodeKey = encodeKey;
    this.what = what;
  }

  key(key: K): Uint8Array {
    const body = this.encodeKey(key);
    const out = new Uint8Array(1 + body.length);
    out[0] = this.prefix;
    out.set(body, 1);
    return out;
  }

  put(key: K, value: V): DbOp {
    return { type: "put", key: this.key(key), value: encodeEntry(value) };
  }

  del(key: K): DbOp {
    return { type: "del", key: this.key(key) };
  }

  decode(bytes: Uint8Array, where: string): V {
    try {
      return decodeEntry(bytes) as V;
    } catch (cause) {
      throw new StoreError("STORE_CORRUPT", `a stored ${this.what} cannot be decoded`, {
        cause,
        meta: { where },
      });
    }
  }

  range(): { gte: Uint8Array; lt: Uint8Array } {
    return { gte: new Uint8Array([this.prefix]), lt: new Uint8Array([this.prefix + 1]) };
  }
}

function heightKey(height: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(height));
  return b;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });
function stateKey([table, key]: readonly [string, string]): Uint8Array {
  return textEncoder.encode(`${table}\u0000${key}`);
}

interface HeadRecord {
  chainId: string;
  height: number;
  root: Uint8Array;
  genesisRoot: Uint8Array;
}
interface BlockRecord {
  block: Uint8Array;
  root: Uint8Array;
}

const corrupt = (message: string, meta: Record<string, unknown> = {}) =>
  new StoreError("STORE_CORRUPT", message, {
    details: "the data directory is damaged or incomplete; restore it from a backup or resync from peers",
    meta,
  });

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

export class LedgerStore {
  readonly db: DbController;
  readonly votes: VoteLog;
  private readonly blocks = new Repository<number, BlockRecord>(BLOCKS, heightKey, "block");
  private readonly state = new Repository<readonly [string, string], unknown>(STATE, stateKey, "state entry");
  private readonly headRepo = new Repository<null, HeadRecord>(HEAD, () => HEAD_KEY.subarray(1), "head");
  private current: StoreHead | undefined;

  private constructor(db: DbController, head: StoreHead | undefined) {
    this.db = db;
    this.votes = new VoteLog(db);
    this.current = head;
  }

  /** Opens a store and checks that its head is whole (the head's block is present). */
  static async open(db: DbController): Promise<LedgerStore> {
    const store = new LedgerStore(db, undefined);
    const bytes = await db.get(HEAD_KEY);
    if (!bytes) {
      for await (const [key] of db.entries({
        gte: new Uint8Array([BLOCKS]),
        lt: new Uint8Array([STATE + 1]),
        limit: 1,
      })) {
        throw corrupt("the store holds blocks or state but no head", { key: toHex(key) });
      }
      return store;
    }
    const h = store.headRepo.decode(bytes, "head");
    if (
      typeof h.chainId !== "string" ||
      !Number.isSafeInteger(h.height) ||
      !(h.root instanceof Uint8Array) ||
      !(h.genesisRoot instanceof Uint8Array)
    ) {
      throw corrupt("the store's head is malformed");
    }
    if (h.height > 0 && !(await db.get(store.blocks.key(h.height)))) {
      throw corrupt(`the store's head is at height ${h.height} but that block is missing`, {
        height: h.height,
      });
    }
    store.current = { chainId: h.chainId, height: h.height, root: h.root, genesisRoot: h.genesisRoot };
    return store;
  }

  head(): StoreHead | undefined {
    return this.current;
  }

  /** Writes the genesis state; a no-op when the store already holds the same genesis. */
  async init(genesis: LedgerState): Promise<void> {
    const chainId = genesis.tables.meta.get("meta")!.chainId;
    if (this.current) {
      if (!equalBytes(this.current.genesisRoot, genesis.root) || this.current.chainId !== chainId) {
        throw new StoreError("STORE_MISMATCH", "the store belongs to another chain or genesis", {
          meta: { storeChainId: this.current.chainId, chainId },
        });
      }
      return;
    }
    const ops: DbOp[] = [];
    for (const name of TABLE_NAMES) {
      for (const [key, value] of genesis.tables[name].entries()) ops.push(this.state.put([name, key], value));
    }
    const head: StoreHead = { chainId, height: 0, root: genesis.root, genesisRoot: genesis.root };
    ops.push(this.headRepo.put(null, head));
    await this.db.batch(ops, { sync: true });
    this.current = head;
  }

  /** Commits one block: block, state changes and head in one fsynced batch. */
  async commit(height: number, block: Uint8Array, changes: StateChanges, root: Uint8Array): Promise<void> {
    const head = this.current;
    if (!head) throw new StoreError("STORE_MISMATCH", "the store has no genesis; call init first");
    if (height !== head.height + 1) {
      throw new StoreError("STORE_MISMATCH", `cannot commit height ${height} on top of ${head.height}`);
    }
    const ops: DbOp[] = [this.blocks.put(height, { block, root })];
    for (const name of TABLE_NAMES) {
      const change = changes[name] as Map<string, unknown> | undefined;
      if (!change) continue;
      for (const [key, value] of change) {
        ops.push(value === null ? this.state.del([name, key]) : this.state.put([name, key], value));
      }
    }
    const next: StoreHead = { ...head, height, root };
    ops.push(this.headRepo.put(null, next));
    await this.db.batch(ops, { sync: true });
    this.current = next;
  }

  /** The committed state, checked against the head's root. */
  async loadState(): Promise<LedgerState> {
    const head = this.current;
    if (!head) throw new StoreError("STORE_MISMATCH", "the store has no genesis");
    const tables: { [T in TableName]?: [string, TableTypes[T]][] } = {};
    for await (const [key, value] of this.db.entries(this.state.range())) {
      let text: string;
      try {
        text = textDecoder.decode(key.subarray(1));
      } catch (cause) {
        throw corrupt("a state key is not UTF-8", { key: toHex(key), cause });
      }
      const sep = text.indexOf("\u0000");
      const table = text.slice(0, sep) as TableName;
      if (sep < 0 || !TABLE_NAMES.includes(table))
        throw corrupt("a state entry names no known table", { key: text });
      let list = tables[table] as [string, unknown][] | undefined;
      if (!list) {
        list = [];
        (tables as Record<string, unknown>)[table] = list;
      }
      list.push([text.slice(sep + 1), this.state.decode(value, text)]);
    }
    const state = stateFromTables(tables);
    if (!equalBytes(state.root, head.root)) {
      throw corrupt(`the stored state does not hash to the root of height ${head.height}`, {
        height: head.height,
        expected: toHex(head.root),
        actual: toHex(state.root),
      });
    }
    return state;
  }

  async getBlock(height: number): Promise<StoredBlock | undefined> {
    const bytes = await this.db.get(this.blocks.key(height));
    if (!bytes) return undefined;
    const r = this.blocks.decode(bytes, `block ${height}`);
    return { height, block: r.block, root: r.root };
  }

  /** Committed blocks from `from` up to the head, in order; a gap is STORE_CORRUPT. */
  async *blockLog(from = 1): AsyncIterable<StoredBlock> {
    const head = this.current?.height ?? 0;
    let expected = from;
    for await (const [key, value] of this.db.entries({
      gte: this.blocks.key(from),
      lt: this.blocks.key(head + 1),
    })) {
      const height = Number(new DataView(key.buffer, key.byteOffset + 1, 8).getBigUint64(0));
      if (height !== expected)
        throw corrupt(`block ${expected} is missing from the log`, { height: expected });
      const r = this.blocks.decode(value, `block ${height}`);
      yield { height, block: r.block, root: r.root };
      expected++;
    }
    if (expected !== head + 1 && from <= head)
      throw corrupt(`block ${expected} is missing from the log`, { height: expected });
  }

  /**
   * Re-executes the block log from `genesis` and checks every height's root: the state a node
   * recomputes from its own blocks must be the one it stored.
   */
  async replay(
    genesis: LedgerState,
    apply: (state: LedgerState, block: StoredBlock) => LedgerState,
  ): Promise<LedgerState> {
    const head = this.current;
    if (!head) throw new StoreError("STORE_MISMATCH", "the store has no genesis");
    if (!equalBytes(genesis.root, head.genesisRoot)) {
      throw new StoreError("STORE_MISMATCH", "the store was made from another genesis");
    }
    let state = genesis;
    for await (const block of this.blockLog(1)) {
      state = apply(state, block);
      if (!equalBytes(state.root, block.root)) {
        throw corrupt(`replaying block ${block.height} gives another state root than the one stored`, {
          height: block.height,
          stored: toHex(block.root),
          recomputed: toHex(state.root),
        });
      }
    }
    if (!equalBytes(state.root, head.root)) throw corrupt("the replayed state does not match the head");
    return state;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
