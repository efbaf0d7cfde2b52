/**
 * Four validator processes on loopback over libp2p commit blocks with transfers; one is killed
 * with SIGKILL mid-run, restarted from its data directory, replays its store, syncs the blocks it
 * missed and rejoins consensus with the same state roots as the others.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NodeProcess } from "./fixtures/node-processes.ts";

const VALIDATORS = 4;
const ACCOUNTS = 8;
const children: NodeProcess[] = [];
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function spawnNode(index: number, dataDir: string, cache: string): Promise<NodeProcess> {
  const node = await NodeProcess.spawn({
    dataDir,
    index,
    validators: VALIDATORS,
    accounts: ACCOUNTS,
    blockIntervalMs: 100,
    compileCache: cache,
  });
  children.push(node);
  return node;
}

describe("validator processes", () => {
  it("commit transfers; one killed with SIGKILL restarts from its data directory and catches up", async () => {
    const root = await mkdtemp(join(tmpdir(), "ds-multi-"));
    dirs.push(root);
    const cache = join(root, "compile-cache");
    const dataDirs = Array.from({ length: VALIDATORS }, (_, i) => join(root, `node-${i}`));
    const nodes = await Promise.all(dataDirs.map((d, i) => spawnNode(i, d, cache)));
    for (const n of nodes)
      n.send({ cmd: "dial", addresses: nodes.filter((m) => m !== n).map((m) => m.address) });
    for (let i = 0; i < VALIDATORS; i++) nodes[i]!.send({ cmd: "transfers", from: i, to: 7, count: 30 });
    await Promise.all(nodes.map((n) => n.waitForHeight(5, 30_000)));

    const victim = nodes[3]!;
    await victim.kill();
    const killedAt = victim.height;
    const alive = nodes.slice(0, 3);
    // The other three hold 3/4 of the power: they keep committing, with more transfers.
    for (let i = 0; i < 3; i++) alive[i]!.send({ cmd: "transfers", from: i, to: 6, count: 20 });
    await Promise.all(alive.map((n) => n.waitForHeight(killedAt + 5, 20_000)));

    const restarted = await spawnNode(3, dataDirs[3]!, cache);
    // It reopened its store where it stopped (nothing committed was lost), not from genesis.
    expect(restarted.height).toBeGreaterThanOrEqual(killedAt);
    restarted.send({ cmd: "dial", addresses: alive.map((n) => n.address) });
    const target = Math.max(...alive.map((n) => n.height)) + 3;
    await restarted.waitForHeight(target, 30_000);
    await Promise.all(alive.map((n) => n.waitForHeight(target, 20_000)));
    // The same state root at every height all four reported since the restart.
    const common = [...restarted.roots.keys()].filter((h) => alive.every((n) => n.roots.has(h)));
    expect(common.length).toBeGreaterThan(0);
    for (const h of common) {
      const roots = new Set([restarted, ...alive].map((n) => n.roots.get(h)));
      expect(roots.size).toBe(1);
    }
    // Every transfer was committed, once.
    for (const n of alive) expect(n.committedTxs).toBe(VALIDATORS * 30 + 3 * 20);
    // Before the kill too: the four agreed.
    for (let h = 1; h <= killedAt; h++) {
      expect(new Set(nodes.map((n) => n.roots.get(h))).size).toBe(1);
    }
  });
});
