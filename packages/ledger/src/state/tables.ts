/**
 * The ledger state as named tables of immutable entries, and the working copy a block is
 * executed on. A block never mutates the state it starts from: writes go to an overlay with an
 * undo journal (so one failed transaction can be rolled back), and `seal` produces the next
 * state, sharing every untouched table and entry with the previous one.
 *
 * The state root is sha256 over the table roots in a fixed order; a table root is sha256 over
 * the leaves of its entries sorted by key; a leaf is sha256(key ‖ 0x00 ‖ canonical CBOR of the
 * entry). Leaves are cached by entry identity and roots by table identity, so sealing a block
 * costs the changed entries plus one pass over each changed table.
 */
import { createHash } from "node:crypto";
import { encodeEntry } from "./codec.ts";
import type { Params } from "./params.ts";
import type {
  Account,
  DataRecord,
  License,
  Meta,
  QueueEntry,
  Round,
  Submission,
  Unbonding,
  Validator,
  WeightsRecord,
} from "./types.ts";

export interface TableTypes {
  meta: Meta;
  params: Params;
  accounts: Account;
  validators: Validator;
  unbonding: Unbonding;
  submissions: Submission;
  data: DataRecord;
  queue: QueueEntry;
  rounds: Round;
  weights: WeightsRecord;
  licenses: License;
}
export type TableName = keyof TableTypes;
/** Fixed order of the tables in the state root. */
export const TABLE_NAMES: readonly TableName[] = [
  "meta",
  "params",
  "accounts",
  "validators",
  "unbonding",
  "submissions",
  "data",
  "queue",
  "rounds",
  "weights",
  "licenses",
];

export type Tables = { readonly [T in TableName]: Table<TableTypes[T]> };

/** One committed state: its tables and its root. Treat as immutable. */
export interface LedgerState {
  readonly tables: Tables;
  readonly root: Uint8Array;
}

/** What one block changed: per table, the new entry or null for a deletion. */
export type StateChanges = { [T in TableName]?: Map<string, TableTypes[T] | null> };

function sha256(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(data).digest();
}

const leafCache = new WeakMap<object, { key: string; leaf: Uint8Array }>();
const SEPARATOR = new Uint8Array([0]);

/** sha256(key ‖ 0x00 ‖ canonical CBOR of the entry), cached by the entry's identity. */
export function leafHash(key: string, value: object): Uint8Array {
  const cached = leafCache.get(value);
  if (cached && cached.key === key) return cached.leaf;
  const leaf = createHash("sha256").update(key).update(SEPARATOR).update(encodeEntry(value)).digest();
  leafCache.set(value, { key, leaf });
  return leaf;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Number of buckets of a table; a block rehashes only the buckets it touched. */
export const BUCKETS = 256;
const EMPTY_ROOT = sha256(new Uint8Array(0));

/** FNV-1a of the key's UTF-16 code units, modulo BUCKETS. */
export function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % BUCKETS;
}

const bucketRoots = new WeakMap<ReadonlyMap<string, object>, Uint8Array>();
function bucketRoot(bucket: ReadonlyMap<string, object> | undefined): Uint8Array {
  if (!bucket || bucket.size === 0) return EMPTY_ROOT;
  let root = bucketRoots.get(bucket);
  if (!root) {
    const keys = [...bucket.keys()].sort(compareKeys);
    const buf = Buffer.allocUnsafe(keys.length * 32);
    for (let i = 0; i < keys.length; i++) buf.set(leafHash(keys[i]!, bucket.get(keys[i]!)!), i * 32);
    root = sha256(buf);
    bucketRoots.set(bucket, root);
  }
  return root;
}

/**
 * An immutable map of entries split into BUCKETS maps by key hash. `with` copies only the
 * buckets it changes, so a new version costs the size of the change, not of the table. Its root
 * is sha256 over the bucket roots; a bucket root is sha256 over its leaves sorted by key.
 */
export class Table<V extends object> {
  private readonly buckets: readonly (ReadonlyMap<string, V> | undefined)[];
  readonly size: number;
  private cachedRoot: Uint8Array | undefined;
  private cachedKeys: string[] | undefined;

  private constructor(buckets: readonly (ReadonlyMap<string, V> | undefined)[], size: number) {
    this.buckets = buckets;
    this.size = size;
  }

  static from<V extends object>(entries: Iterable<readonly [string, V]> = []): Table<V> {
    return Table.empty<V>().with(new Map(entries));
  }

  static empty<V extends object>(): Table<V> {
    return new Table<V>(new Array(BUCKETS).fill(undefined), 0);
  }

  get(key: string): V | undefined {
    return this.buckets[bucketOf(key)]?.get(key);
  }

  has(key: string): boolean {
    return this.buckets[bucketOf(key)]?.has(key) ?? false;
  }

  /** All keys in ascending order (cached). */
  sortedKeys(): readonly string[] {
    if (!this.cachedKeys) {
      const keys: string[] = [];
      for (const b of this.buckets) if (b) for (const k of b.keys()) keys.push(k);
      this.cachedKeys = keys.sort(compareKeys);
    }
    return this.cachedKeys;
  }

  /** Entries in no particular order: never let a result depend on it. */
  *entries(): IterableIterator<[string, V]> {
    for (const b of this.buckets) if (b) yield* b.entries();
  }

  *values(): IterableIterator<V> {
    for (const b of this.buckets) if (b) yield* b.values();
  }

  keys(): IterableIterator<string> {
    return this.sortedKeys()[Symbol.iterator]();
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /** A new table with `changes` applied (null deletes). */
  with(changes: ReadonlyMap<string, V | null>): Table<V> {
    if (changes.size === 0) return this;
    const buckets = [...this.buckets];
    const copied = new Set<number>();
    let size = this.size;
    for (const [key, value] of changes) {
      const i = bucketOf(key);
      let bucket = buckets[i] as Map<string, V> | undefined;
      if (!copied.has(i)) {
        bucket = new Map(bucket);
        buckets[i] = bucket;
        copied.add(i);
      }
      const had = bucket!.has(key);
      if (value === null) {
        if (had) {
          bucket!.delete(key);
          size--;
        }
      } else {
        bucket!.set(key, value);
        if (!had) size++;
      }
    }
    return new Table(buckets, size);
  }

  root(): Uint8Array {
    if (!this.cachedRoot) {
      const buf = Buffer.allocUnsafe(BUCKETS * 32);
      for (let i = 0; i < BUCKETS; i++) buf.set(bucketRoot(this.buckets[i]), i * 32);
      this.cachedRoot = sha256(buf);
    }
    return this.cachedRoot;
  }
}

export function stateRoot(tables: Tables): Uint8Array {
  const buf = Buffer.allocUnsafe(TABLE_NAMES.length * 32);
  TABLE_NAMES.forEach((name, i) => {
    buf.set(tables[name].root(), i * 32);
  });
  return sha256(buf);
}

/** Builds a state from complete tables (genesis, or entries read back from a store). */
export function stateFromTables(
  tables: { [T in TableName]?: Iterable<readonly [string, TableTypes[T]]> },
): LedgerState {
  const full = {} as Record<TableName, Table<object>>;
  for (const name of TABLE_NAMES) {
    full[name] = Table.from((tables[name] ?? []) as Iterable<readonly [string, object]>);
  }
  const sealed = full as unknown as Tables;
  return { tables: sealed, root: stateRoot(sealed) };
}

const DELETED = Symbol("deleted");
type Slot<V> = V | typeof DELETED;

interface JournalEntry {
  table: TableName;
  key: string;
  /** The overlay slot before the write; undefined when the key was not in the overlay. */
  previous: Slot<unknown> | undefined;
}

/** A mutable view of a state during one block. */
export class WorkingState {
  readonly base: LedgerState;
  private readonly overlays = new Map<TableName, Map<string, Slot<unknown>>>();
  private readonly journal: JournalEntry[] = [];

  constructor(base: LedgerState) {
    this.base = base;
  }

  get<T extends TableName>(table: T, key: string): TableTypes[T] | undefined {
    const overlay = this.overlays.get(table);
    if (overlay) {
      const slot = overlay.get(key);
      if (slot !== undefined) return slot === DELETED ? undefined : (slot as TableTypes[T]);
    }
    return this.base.tables[table].get(key) as TableTypes[T] | undefined;
  }

  set<T extends TableName>(table: T, key: string, value: TableTypes[T]): void {
    this.write(table, key, value);
  }

  delete(table: TableName, key: string): void {
    this.write(table, key, DELETED);
  }

  private write(table: TableName, key: string, slot: Slot<unknown>): void {
    let overlay = this.overlays.get(table);
    if (!overlay) {
      overlay = new Map();
      this.overlays.set(table, overlay);
    }
    this.journal.push({ table, key, previous: overlay.get(key) });
    overlay.set(key, slot);
  }

  /** Current keys of a table, sorted: the only iteration order the state machine may depend on. */
  keys(table: TableName): readonly string[] {
    const overlay = this.overlays.get(table);
    const base = this.base.tables[table].sortedKeys();
    if (!overlay || overlay.size === 0) return base;
    const set = new Set(base);
    for (const [key, slot] of overlay) {
      if (slot === DELETED) set.delete(key);
      else set.add(key);
    }
    return [...set].sort(compareKeys);
  }

  /** Number of entries of a table, without sorting. */
  size(table: TableName): number {
    const overlay = this.overlays.get(table);
    let n = this.base.tables[table].size;
    if (overlay) {
      for (const [key, slot] of overlay) {
        const inBase = this.base.tables[table].has(key);
        if (slot === DELETED && inBase) n--;
        else if (slot !== DELETED && !inBase) n++;
      }
    }
    return n;
  }

  mark(): number {
    return this.journal.length;
  }

  /** Undoes every write after `mark`. */
  revert(mark: number): void {
    while (this.journal.length > mark) {
      const { table, key, previous } = this.journal.pop()!;
      const overlay = this.overlays.get(table)!;
      if (previous === undefined) overlay.delete(key);
      else overlay.set(key, previous);
    }
  }

  /** The next state and the changes that lead to it. */
  seal(): { state: LedgerState; changes: StateChanges } {
    const tables = { ...this.base.tables } as Record<TableName, Table<object>>;
    const changes: Record<string, Map<string, object | null>> = {};
    for (const [name, overlay] of this.overlays) {
      if (overlay.size === 0) continue;
      const change = new Map<string, object | null>();
      for (const [key, slot] of overlay) change.set(key, slot === DELETED ? null : (slot as object));
      tables[name] = (tables[name] as Table<object>).with(change);
      changes[name] = change;
    }
    const sealed = tables as unknown as Tables;
    return { state: { tables: sealed, root: stateRoot(sealed) }, changes: changes as StateChanges };
  }
}

/** Applies stored changes to a state (used when a store replays its change log). */
export function applyChanges(state: LedgerState, changes: StateChanges): LedgerState {
  const working = new WorkingState(state);
  for (const name of TABLE_NAMES) {
    const change = changes[name] as Map<string, unknown> | undefined;
    if (!change) continue;
    for (const [key, value] of change) {
      if (value === null) working.delete(name, key);
      else working.set(name, key, value as never);
    }
  }
  return working.seal().state;
}
