/**
 * The byte-level database controller the ledger's repositories sit on, with two implementations
 * that pass the same compliance suite: `MemoryDb` (tests, simulations) and `LevelDb`
 * (classic-level). Keys and values are bytes; ordering is bytewise.
 */
import { ClassicLevel } from "classic-level";
import { StoreError } from "./errors.ts";

export type DbOp = { type: "put"; key: Uint8Array; value: Uint8Array } | { type: "del"; key: Uint8Array };

export interface DbRange {
  gte?: Uint8Array;
  lt?: Uint8Array;
  reverse?: boolean;
  limit?: number;
}

export interface WriteOptions {
  /** Wait until the write reached the disk (fsync). */
  sync?: boolean;
}

export interface DbController {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  put(key: Uint8Array, value: Uint8Array, options?: WriteOptions): Promise<void>;
  /** All or nothing. */
  batch(ops: readonly DbOp[], options?: WriteOptions): Promise<void>;
  entries(range?: DbRange): AsyncIterable<[Uint8Array, Uint8Array]>;
  close(): Promise<void>;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** An in-memory controller: the reference the LevelDB one must behave like. */
export class MemoryDb implements DbController {
  private readonly map = new Map<string, Uint8Array>();
  private closed = false;

  private check(): void {
    if (this.closed) throw new StoreError("STORE_CLOSED", "the database is closed");
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.check();
    const v = this.map.get(Buffer.from(key).toString("hex"));
    return v && Uint8Array.from(v);
  }

  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.check();
    this.map.set(Buffer.from(key).toString("hex"), Uint8Array.from(value));
  }

  async batch(ops: readonly DbOp[]): Promise<void> {
    this.check();
    for (const op of ops) {
      const k = Buffer.from(op.key).toString("hex");
      if (op.type === "put") this.map.set(k, Uint8Array.from(op.value));
      else this.map.delete(k);
    }
  }

  async *entries(range: DbRange = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    this.check();
    const keys = [...this.map.keys()]
      .map((k) => new Uint8Array(Buffer.from(k, "hex")))
      .filter(
        (k) =>
          (!range.gte || compareBytes(k, range.gte) >= 0) && (!range.lt || compareBytes(k, range.lt) < 0),
      )
      .sort(compareBytes);
    if (range.reverse) keys.reverse();
    const limited = range.limit === undefined ? keys : keys.slice(0, range.limit);
    for (const k of limited) {
      const v = this.map.get(Buffer.from(k).toString("hex"));
      if (v) yield [k, Uint8Array.from(v)];
    }
  }

  /** Reopening is a no-op for memory; `close` only marks handles closed. */
  async close(): Promise<void> {
    this.closed = true;
  }

  /** A new handle on the same contents, as a restarted process would get from disk. */
  reopen(): MemoryDb {
    const db = new MemoryDb();
    for (const [k, v] of this.map) db.map.set(k, v);
    return db;
  }

  /** Test hook for corruption: direct access to raw contents. */
  raw(): Map<string, Uint8Array> {
    return this.map;
  }
}

function levelError(err: unknown, location: string): StoreError {
  const codes: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  if (codes.includes("LEVEL_LOCKED")) {
    return new StoreError("DATABASE_IN_USE", `the database at ${location} is in use by another process`, {
      details: "stop the other deepshard process using this data directory, or choose another directory",
      cause: err,
      meta: { location },
    });
  }
  if (codes.includes("LEVEL_CORRUPTION")) {
    return new StoreError("STORE_CORRUPT", `the database at ${location} is corrupt`, {
      cause: err,
      meta: { location },
    });
  }
  return new StoreError("STORE_IO", `cannot use the database at ${location}`, {
    cause: err,
    meta: { location },
  });
}

/** classic-level behind the controller interface; open with `LevelDb.open(path)`. */
export class LevelDb implements DbController {
  private readonly db: ClassicLevel<Uint8Array, Uint8Array>;
  readonly location: string;

  private constructor(db: ClassicLevel<Uint8Array, Uint8Array>, location: string) {
    this.db = db;
    this.location = location;
  }

  static async open(location: string, options: { createIfMissing?: boolean } = {}): Promise<LevelDb> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(location, {
      keyEncoding: "view",
      valueEncoding: "view",
    });
    try {
      await db.open({ createIfMissing: options.createIfMissing ?? true });
    } catch (err) {
      throw levelError(err, location);
    }
    return new LevelDb(db, location);
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    try {
      return await this.db.get(key);
    } catch (err) {
      throw levelError(err, this.location);
    }
  }

  async put(key: Uint8Array, value: Uint8Array, options: WriteOptions = {}): Promise<void> {
    try {
      await this.db.put(key, value, { sync: options.sync ?? false });
    } catch (err) {
      throw levelError(err, this.location);
    }
  }

  async batch(ops: readonly DbOp[], options: WriteOptions = {}): Promise<void> {
    try {
      await this.db.batch(
        ops.map((op) =>
          op.type === "put" ? { type: "put", key: op.key, value: op.value } : { type: "del", key: op.key },
        ),
        { sync: options.sync ?? false },
      );
    } catch (err) {
      throw levelError(err, this.location);
    }
  }

  async *entries(range: DbRange = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    const options: { gte?: Uint8Array; lt?: Uint8Array; reverse?: boolean; limit?: number } = {};
    if (range.gte) options.gte = range.gte;
    if (range.lt) options.lt = range.lt;
    if (range.reverse) options.reverse = true;
    if (range.limit !== undefined) options.limit = range.limit;
    try {
      for await (const [k, v] of this.db.iterator(options)) yield [k, v];
    } catch (err) {
      throw levelError(err, this.location);
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
