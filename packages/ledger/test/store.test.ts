/**
 * One compliance suite, two stores: every test runs against the memory controller and the
 * LevelDB one, as js-libp2p does for its interfaces. Then the LevelDB-only failures: a lock held
 * by another process, and damaged files.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepshardError } from "@deepshard/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "../src/state/hashing.ts";
import { type DbController, LevelDb, MemoryDb } from "../src/store/db.ts";
import { LedgerStore } from "../src/store/ledger-store.ts";
import { makeChain, replayBlock } from "./sim/chain.ts";

const chain = makeChain(42, 30, 30);

interface Harness {
  open(): Promise<DbController>;
  /** Damages the raw contents of a closed store: `edit` gets every key (hex) and may drop or change values. */
  tamper(edit: (raw: Map<string, Uint8Array>) => void): Promise<void>;
  cleanup(): Promise<void>;
}

function memoryHarness(): Harness {
  let db = new MemoryDb();
  return {
    async open() {
      db = db.reopen();
      return db;
    },
    async tamper(edit) {
      edit(db.raw());
    },
    async cleanup() {},
  };
}

async function levelHarness(): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), "ds-store-"));
  return {
    open: () => LevelDb.open(dir),
    async tamper(edit) {
      const db = await LevelDb.open(dir);
      const raw = new Map<string, Uint8Array>();
      for await (const [k, v] of db.entries()) raw.set(toHex(k), v);
      const before = new Set(raw.keys());
      edit(raw);
      const ops = [];
      for (const k of before) if (!raw.has(k)) ops.push({ type: "del" as const, key: Buffer.from(k, "hex") });
      for (const [k, v] of raw) ops.push({ type: "put" as const, key: Buffer.from(k, "hex"), value: v });
      await db.batch(ops, { sync: true });
      await db.close();
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

const implementations: [string, () => Promise<Harness>][] = [
  ["memory", async () => memoryHarness()],
  ["level", levelHarness],
];

describe.each(implementations)("LedgerStore over %s", (_name, make) => {
  let harness: Harness;
  const open: DbController[] = [];
  afterEach(async () => {
    for (const db of open.splice(0)) await db.close().catch(() => undefined);
    await harness?.cleanup();
  });

  async function openStore(): Promise<LedgerStore> {
    const db = await harness.open();
    open.push(db);
    return LedgerStore.open(db);
  }

  async function closeAll(): Promise<void> {
    for (const db of open.splice(0)) await db.close();
  }

  async function commitAll(store: LedgerStore, upTo = chain.blocks.length): Promise<void> {
    await store.init(chain.genesis);
    for (const b of chain.blocks.slice(0, upTo))
      await store.commit(b.input.height, b.bytes, b.result.changes, b.result.state.root);
  }

  it("commits blocks and reads back the same state and log after a reopen", async () => {
    harness = await make();
    await commitAll(await openStore());
    await closeAll();
    const store = await openStore();
    const last = chain.blocks.at(-1)!;
    expect(store.head()?.height).toBe(last.input.height);
    const state = await store.loadState();
    expect(toHex(state.root)).toBe(toHex(last.result.state.root));
    expect(state.tables.meta.get("meta")).toEqual(last.result.state.tables.meta.get("meta"));
    const got = await store.getBlock(5);
    expect(got && toHex(got.block)).toBe(toHex(chain.blocks[4]!.bytes));
    const replayed = await store.replay(chain.genesis, (s, b) => replayBlock(s, b.block));
    expect(toHex(replayed.root)).toBe(toHex(last.result.state.root));
  });

  it("init is idempotent for the same genesis and refuses another", async () => {
    harness = await make();
    const store = await openStore();
    await store.init(chain.genesis);
    await store.init(chain.genesis);
    const other = makeChain(43, 1, 1).genesis;
    await expect(store.init(other)).rejects.toMatchObject({ code: "STORE_MISMATCH" });
  });

  it("refuses to commit a height out of order", async () => {
    harness = await make();
    const store = await openStore();
    await store.init(chain.genesis);
    const b = chain.blocks[1]!;
    await expect(store.commit(2, b.bytes, b.result.changes, b.result.state.root)).rejects.toMatchObject({
      code: "STORE_MISMATCH",
    });
  });

  it("reports a changed state entry as corrupt", async () => {
    harness = await make();
    await commitAll(await openStore(), 10);
    await closeAll();
    await harness.tamper((raw) => {
      const key = [...raw.keys()].find(
        (k) => k.startsWith("03") && Buffer.from(k, "hex").toString().includes("accounts"),
      )!;
      const value = raw.get(key)!;
      const changed = Uint8Array.from(value);
      changed[changed.length - 1] ^= 1;
      raw.set(key, changed);
    });
    const store = await openStore();
    await expect(store.loadState()).rejects.toMatchObject({ code: "STORE_CORRUPT" });
  });

  it("reports undecodable bytes and a missing head block as corrupt", async () => {
    harness = await make();
    await commitAll(await openStore(), 10);
    await closeAll();
    await harness.tamper((raw) => {
      const key = [...raw.keys()].find((k) => k.startsWith("03"))!;
      raw.set(key, new Uint8Array([0xff, 0x00]));
    });
    await expect((await openStore()).loadState()).rejects.toMatchObject({ code: "STORE_CORRUPT" });
    await closeAll();
    await harness.tamper((raw) => {
      const headBlock = `02${(10).toString(16).padStart(16, "0")}`;
      expect(raw.delete(headBlock)).toBe(true);
    });
    await expect(openStore()).rejects.toMatchObject({ code: "STORE_CORRUPT" });
  });

  it("reports a gap in the block log and data without a head", async () => {
    harness = await make();
    await commitAll(await openStore(), 10);
    await closeAll();
    await harness.tamper((raw) => {
      raw.delete(`02${(4).toString(16).padStart(16, "0")}`);
    });
    const store = await openStore();
    await expect(store.replay(chain.genesis, (s, b) => replayBlock(s, b.block))).rejects.toMatchObject({
      code: "STORE_CORRUPT",
    });
    await closeAll();
    await harness.tamper((raw) => {
      for (const k of [...raw.keys()]) if (k.startsWith("01")) raw.delete(k);
    });
    await expect(openStore()).rejects.toMatchObject({ code: "STORE_CORRUPT" });
  });

  it("vote log: refuses a conflicting vote, also after a restart, and accepts the same vote again", async () => {
    harness = await make();
    const store = await openStore();
    const vote = {
      v: 1,
      type: "prevote",
      chainId: "c",
      height: 7,
      round: 2,
      blockHash: new Uint8Array(32).fill(1),
    };
    await store.votes.record(vote);
    await store.votes.record(vote);
    await expect(store.votes.record({ ...vote, blockHash: null })).rejects.toMatchObject({
      code: "VOTE_CONFLICT",
    });
    await store.votes.record({ ...vote, type: "precommit" });
    await store.votes.record({ ...vote, round: 3, blockHash: null });
    await closeAll();
    const again = await openStore();
    await expect(
      again.votes.record({ ...vote, blockHash: new Uint8Array(32).fill(2) }),
    ).rejects.toMatchObject({
      code: "VOTE_CONFLICT",
    });
    expect(await again.votes.get(7, 2, "prevote")).toEqual(vote);
    await again.votes.prune(8);
    expect(await again.votes.get(7, 2, "prevote")).toBeUndefined();
  });

  it("vote log: pruning block after block forgets every vote below the height, and only those", async () => {
    harness = await make();
    const store = await openStore();
    const vote = (height: number, round: number) => ({
      v: 1,
      type: "precommit",
      chainId: "c",
      height,
      round,
      blockHash: null,
    });
    for (let h = 1; h <= 6; h++) for (let r = 0; r < 2; r++) await store.votes.record(vote(h, r));
    await store.votes.prune(3);
    await store.votes.prune(3);
    await store.votes.prune(5);
    for (let h = 1; h <= 6; h++)
      for (let r = 0; r < 2; r++)
        expect(await store.votes.get(h, r, "precommit")).toEqual(h < 5 ? undefined : vote(h, r));
  });

  it("vote log: of two concurrent conflicting votes exactly one is recorded", async () => {
    harness = await make();
    const store = await openStore();
    const a = {
      v: 1,
      type: "precommit",
      chainId: "c",
      height: 1,
      round: 0,
      blockHash: new Uint8Array(32).fill(3),
    };
    const results = await Promise.allSettled([
      store.votes.record(a),
      store.votes.record({ ...a, blockHash: null }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
  });
});

describe("LevelDB-only failures", () => {
  const dirs: string[] = [];
  const dbs: LevelDb[] = [];
  afterEach(async () => {
    for (const db of dbs.splice(0)) await db.close().catch(() => undefined);
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  async function tmp(): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), "ds-level-"));
    dirs.push(d);
    return d;
  }

  it("a database open in this process is 'in use', not LEVEL_LOCKED", async () => {
    const dir = await tmp();
    dbs.push(await LevelDb.open(dir));
    const err = await LevelDb.open(dir).catch((e: unknown) => e);
    expect(isDeepshardError(err, "DATABASE_IN_USE")).toBe(true);
    expect((err as Error).message).toMatch(/in use by another process/);
  });

  it("a database held by another process is 'in use'", async () => {
    const dir = await tmp();
    const holder = join(dir, "..", `${dir.split("/").at(-1)}-holder.mjs`);
    dirs.push(holder);
    await writeFile(
      holder,
      `import { ClassicLevel } from ${JSON.stringify(createRequire(import.meta.url).resolve("classic-level"))};
const db = new ClassicLevel(${JSON.stringify(join(dir, "db"))});
await db.open();
process.stdout.write("ready\\n");
setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, [holder], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
        child.on("exit", (code) => reject(new Error(`holder exited with ${code}`)));
      });
      const err = await LevelDb.open(join(dir, "db")).catch((e: unknown) => e);
      expect(isDeepshardError(err, "DATABASE_IN_USE")).toBe(true);
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    }
  });

  it("damaged LevelDB files are reported as corrupt, not reset", async () => {
    const dir = await tmp();
    const db = await LevelDb.open(dir);
    const store = await LedgerStore.open(db);
    await store.init(chain.genesis);
    await db.close();
    const manifest = (await readdir(dir)).find((f) => f.startsWith("MANIFEST-"))!;
    await writeFile(join(dir, manifest), Buffer.alloc(100, 0xab));
    const err = await LevelDb.open(dir).catch((e: unknown) => e);
    expect(isDeepshardError(err, "STORE_CORRUPT")).toBe(true);
  });
});
