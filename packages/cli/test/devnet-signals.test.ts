/**
 * How a real `deepshard devnet` process ends: Ctrl-C at a terminal (SIGINT to the devnet's whole
 * process group) stops every node once and cleanly, and a devnet killed with SIGKILL leaves no
 * node running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type DevnetManifest, prepareDevnet, spreadRoles } from "../src/node/devnet.ts";
import { alive, until } from "./node-fixture.ts";

const RECIPE = { steps: 2, batchSize: 2, context: 16, nEmbd: 8, nLayer: 1, nHead: 1 };
const ROLES = "validator=2";
const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");

let dir: string;
let manifest: DevnetManifest;
const pids: number[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-devnet-signals-"));
  manifest = await prepareDevnet({ dir, roles: spreadRoles(2, ROLES), recipe: RECIPE, chunkSize: 1024 });
});
afterEach(() => {
  for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Running {
  devnet: ChildProcess;
  nodePids: number[];
  exited: Promise<number | null>;
}

/**
 * The devnet as a terminal runs it: the leader of its own process group (a shell's foreground job),
 * the nodes announced, a first block seen.
 */
async function startDevnet(): Promise<Running> {
  const devnet = spawn(
    process.execPath,
    [bin, "devnet", "--nodes", "2", "--roles", ROLES, "--dir", dir, "--json", "--no-demo"],
    {
      detached: true,
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, DEEPSHARD_BLOCK_INTERVAL_MS: "100" },
    },
  );
  pids.push(devnet.pid!);
  const exited = new Promise<number | null>((done) => devnet.once("exit", done));
  const nodePids: number[] = [];
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error("no block within 60 s")), 60_000);
    createInterface({ input: devnet.stdout! }).on("line", (line) => {
      const event = JSON.parse(line) as { type: string; pid?: number };
      if (event.type === "devnet.node") {
        nodePids.push(event.pid!);
        pids.push(event.pid!);
      }
      if (event.type === "block") {
        clearTimeout(timer);
        done();
      }
    });
    void exited.then((code) => fail(new Error(`the devnet exited with ${code}`)));
  });
  expect(nodePids).toHaveLength(2);
  return { devnet, nodePids, exited };
}

/** What each node logged since `from` (its log is appended to across runs). */
async function logsSince(from: number[]): Promise<string[]> {
  return Promise.all(
    manifest.nodes.map(async (n, i) => (await readFile(join(n.dataDir, "node.log"), "utf8")).slice(from[i])),
  );
}

async function logSizes(): Promise<number[]> {
  return Promise.all(
    manifest.nodes.map(async (n) =>
      readFile(join(n.dataDir, "node.log"), "utf8").then(
        (s) => s.length,
        () => 0,
      ),
    ),
  );
}

describe("stopping a devnet process", () => {
  it("Ctrl-C (SIGINT to its process group) stops each node once and cleanly; the devnet exits 0", async () => {
    const before = await logSizes();
    const { devnet, nodePids, exited } = await startDevnet();
    process.kill(-devnet.pid!, "SIGINT");
    expect(await exited).toBe(0);
    for (const pid of nodePids) expect(alive(pid)).toBe(false);
    for (const log of await logsSince(before)) {
      expect(log.match(/signal received/g)).toHaveLength(1);
      expect(log).not.toMatch(/second signal/);
      expect(log).toMatch(/ INFO {2}node: stopped\n/);
    }
  }, 120_000);

  it("SIGKILL of the devnet leaves no node running: each stops when its parent's channel closes", async () => {
    const before = await logSizes();
    const { devnet, nodePids } = await startDevnet();
    process.kill(devnet.pid!, "SIGKILL");
    await until(() => nodePids.every((pid) => !alive(pid)), 30_000);
    for (const log of await logsSince(before)) expect(log).toMatch(/ INFO {2}node: stopped\n/);
  }, 120_000);
});
