/**
 * `deepshard devnet`: how roles spread over processes, a devnet reused on restart and replaced
 * with fresh, and the command itself — nodes announced as JSON lines, every child process gone
 * after SIGTERM.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DevnetError, prepareDevnet, spreadRoles } from "../src/node/devnet.ts";
import { alive } from "./node-fixture.ts";

const RECIPE = { steps: 2, batchSize: 2, context: 16, nEmbd: 8, nLayer: 1, nHead: 1 };
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-devnet-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("spreadRoles", () => {
  it("puts validators and storage on the first nodes and spreads the rest, one role per node at most", () => {
    expect(spreadRoles(4, "validator=4,storage=4,informant=2,trainer=3,inference=1")).toEqual([
      ["validator", "informant", "trainer", "storage"],
      ["validator", "informant", "storage", "inference"],
      ["validator", "trainer", "storage"],
      ["validator", "trainer", "storage"],
    ]);
    expect(spreadRoles(2, "validator,trainer=2")).toEqual([["validator", "trainer"], ["trainer"]]);
  });

  it("refuses unknown roles, more of a role than nodes, and a devnet without validators", () => {
    for (const [nodes, spec] of [
      [2, "validator,miner"],
      [2, "validator,trainer=3"],
      [2, "trainer=2"],
      [0, "validator"],
      [2, "validator=x"],
    ] as const) {
      expect(() => spreadRoles(nodes, spec)).toThrow(DevnetError);
    }
  });
});

describe("deepshard devnet", () => {
  it("reuses the devnet in --dir, replaces it with fresh, and stops every node on SIGTERM", async () => {
    const roles = spreadRoles(2, "validator=2,storage");
    const first = await prepareDevnet({ dir, roles, recipe: RECIPE, chunkSize: 1024 });
    const again = await prepareDevnet({ dir, roles, recipe: RECIPE, chunkSize: 1024 });
    expect(again).toEqual(first);
    await expect(prepareDevnet({ dir, roles: [["validator"]], recipe: RECIPE })).rejects.toMatchObject({
      code: "DEVNET_MISMATCH",
    });
    const fresh = await prepareDevnet({ dir, roles, recipe: RECIPE, chunkSize: 1024, fresh: true });
    expect(fresh.nodes[0]!.address).not.toBe(first.nodes[0]!.address);
    expect(fresh.weightsId).toBe(first.weightsId);

    // The command reuses that devnet (same roles), prints its nodes, then blocks, then stops.
    const child = spawn(
      process.execPath,
      [
        join(import.meta.dirname, "..", "bin", "deepshard.js"),
        "devnet",
        "--nodes",
        "2",
        "--roles",
        "validator=2,storage",
        "--dir",
        dir,
        "--json",
      ],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, DEEPSHARD_BLOCK_INTERVAL_MS: "100" } },
    );
    const lines: Record<string, unknown>[] = [];
    const exited = new Promise<number | null>((done) => child.once("exit", done));
    try {
      await new Promise<void>((done, fail) => {
        const timer = setTimeout(() => fail(new Error("no block within 60 s")), 60_000);
        createInterface({ input: child.stdout! }).on("line", (line) => {
          lines.push(JSON.parse(line));
          if (lines.at(-1)!.type === "block") {
            clearTimeout(timer);
            done();
          }
        });
      });
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    const nodes = lines.filter((l) => l.type === "devnet.node");
    expect(nodes.map((n) => n.address)).toEqual(fresh.nodes.map((n) => n.address));
    expect(nodes.map((n) => n.roles)).toEqual([["validator", "storage"], ["validator"]]);
    for (const n of nodes) expect(alive(n.pid as number)).toBe(false);
    expect(lines.at(-1)!.type).toBe("devnet.stopped");
  }, 120_000);
});
