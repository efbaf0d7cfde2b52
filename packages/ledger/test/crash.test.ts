/**
 * Crash consistency: a child process commits simulated blocks to a LevelDB store and is killed
 * with SIGKILL at random points, again and again. After each kill the store must open, hold
 * every block the child reported as committed (and at most the one it was about to report),
 * and its state must hash to the stored root; at the end the whole block log is replayed from
 * genesis and must give the same roots. CRASH_CYCLES sets the number of kills (CI: 200).
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { toHex } from "../src/state/hashing.ts";
import { LevelDb } from "../src/store/db.ts";
import { LedgerStore } from "../src/store/ledger-store.ts";
import { replayBlock } from "./sim/chain.ts";
import { Rng, simActors, simGenesis } from "./sim/generator.ts";

const CYCLES = Number(process.env.CRASH_CYCLES ?? 200);
/** Independent chains killed side by side, to keep the wall time down. */
const CHAINS = 4;
const CHILD = fileURLToPath(new URL("./fixtures/crash-child.ts", import.meta.url));

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Life {
  reported: number;
  exitSignal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the child once and kills it at a random point; returns the highest height it reported. */
async function oneLife(dir: string, seed: number, rng: Rng, cacheDir: string): Promise<Life> {
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(
    process.execPath,
    [CHILD, dir, String(seed)],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NODE_COMPILE_CACHE: cacheDir },
    },
  );
  const life: Life = { reported: 0, exitSignal: null, stderr: "" };
  let buffered = "";
  let timer: NodeJS.Timeout | undefined;
  const kill = () => child.kill("SIGKILL");
  // A quarter of the kills land anywhere from spawn on (during start-up, open, or recovery).
  const early = rng.chance(0.25);
  if (early) timer = setTimeout(kill, rng.int(400));
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith("ready") && !early) timer = setTimeout(kill, rng.int(60));
      if (line.startsWith("committed ")) life.reported = Math.max(life.reported, Number(line.slice(10)));
      nl = buffered.indexOf("\n");
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    life.stderr += chunk.toString();
  });
  const [code, signal] = (await new Promise((resolve) => child.once("exit", (c, s) => resolve([c, s])))) as [
    number | null,
    NodeJS.Signals | null,
  ];
  clearTimeout(timer);
  life.exitSignal = signal;
  if (signal !== "SIGKILL") throw new Error(`child exited by itself (code ${code}): ${life.stderr}`);
  return life;
}

async function runChain(index: number, cycles: number): Promise<{ height: number; lives: number }> {
  const seed = 1000 + index;
  const dir = await mkdtemp(join(tmpdir(), `ds-crash-${index}-`));
  dirs.push(dir);
  const cacheDir = join(tmpdir(), "ds-crash-compile-cache");
  const rng = new Rng(seed);
  let committed = 0;
  for (let cycle = 0; cycle < cycles; cycle++) {
    const life = await oneLife(join(dir, "db"), seed, rng, cacheDir);
    committed = Math.max(committed, life.reported);
    const db = await LevelDb.open(join(dir, "db"));
    try {
      const store = await LedgerStore.open(db);
      const head = store.head()?.height ?? 0;
      // Nothing reported is lost; at most one more block (committed, not yet reported) is there.
      expect(head, `cycle ${cycle}`).toBeGreaterThanOrEqual(committed);
      expect(head, `cycle ${cycle}`).toBeLessThanOrEqual(committed + 1);
      committed = head;
      if (store.head()) await store.loadState();
    } finally {
      await db.close();
    }
  }
  const db = await LevelDb.open(join(dir, "db"));
  try {
    const store = await LedgerStore.open(db);
    const genesis = simGenesis(simActors(seed));
    const replayed = await store.replay(genesis, (state, block) => replayBlock(state, block.block));
    expect(toHex(replayed.root)).toBe(toHex(store.head()!.root));
    return { height: store.head()!.height, lives: cycles };
  } finally {
    await db.close();
  }
}

describe("crash consistency under SIGKILL", () => {
  it(`${CYCLES} kills over ${CHAINS} chains lose no committed block and replay to the stored roots`, async () => {
    const perChain = Math.ceil(CYCLES / CHAINS);
    const results = await Promise.all(Array.from({ length: CHAINS }, (_, i) => runChain(i, perChain)));
    // The chains made progress across their lives (not killed before every first commit).
    for (const r of results) expect(r.height).toBeGreaterThan(perChain / 4);
  }, 600_000);
});
