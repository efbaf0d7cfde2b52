/**
 * The inference role and the weights commands over real daemons and the real CLI: without a
 * license the fetch is refused in one line; `weights buy` refuses a price above --max-price, then
 * buys; `weights fetch` takes the chunks from both storage nodes, verified, into a model folder
 * that `POST /inference/generate` and `deepshard generate --model` both use; `weights price` and
 * `weights inspect` report the price, the holders and the replication.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { writeKeystore } from "@deepshard/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/node/daemon.ts";
import { WeightsClient } from "../src/node/roles/storage/client.ts";
import { FAST_KDF, PASSPHRASE } from "./node-fixture.ts";
import {
  MAIN_BOND,
  makeWeightsNetwork,
  type RunningNode,
  SMALL_BOND,
  startWeightsNode,
  until,
  type WeightsNetwork,
} from "./roles-storage-fixture.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const exec = promisify(execFile);

let dir: string;
let net: WeightsNetwork;
const running: Daemon[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-inference-"));
  // 0: the main validator; 1, 2: storage nodes (1 seeded with the genesis weights); 3: inference.
  net = await makeWeightsNetwork(dir, [MAIN_BOND, SMALL_BOND, SMALL_BOND, 0n]);
});

afterAll(async () => {
  for (const d of running.splice(0).reverse()) await d.stop(3_000);
  await rm(dir, { recursive: true, force: true });
});

async function start(i: number, options: Parameters<typeof startWeightsNode>[2]): Promise<RunningNode> {
  const node = await startWeightsNode(net, i, options);
  running.push(node.daemon);
  return node;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { DEEPSHARD_API: _a, ...env } = process.env;
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args], {
      env: { ...env, DEEPSHARD_PASSPHRASE: PASSPHRASE },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function json(args: string[]) {
  const r = await cli([...args, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

describe("the inference role and the weights commands", () => {
  it("buys a license, fetches from both holders with verification, and generates", async () => {
    const { weightsId, chunkCount } = net.genesis;
    const main = await start(0, { roles: ["validator"] });
    const a = await start(1, {
      roles: ["validator", "storage"],
      seedGenesis: true,
      bootstrap: [main.daemon],
    });
    const b = await start(2, { roles: ["validator", "storage"], bootstrap: [main.daemon, a.daemon] });
    const inference = await start(3, {
      roles: ["inference"],
      bootstrap: [main.daemon, a.daemon, b.daemon],
    });
    const api = ["--api", inference.daemon.apiUrl];
    const keyFile = join(dir, "inference.key");
    await writeKeystore(keyFile, net.keys[3]!.secretKey, PASSPHRASE, { kdf: FAST_KDF });
    // Two storage nodes and r = 2: both hold every chunk.
    await until(() => b.daemon.stores.chunks.indices(weightsId).length === chunkCount, 30_000);

    const unlicensed = await cli(["weights", "fetch", ...api]);
    expect(unlicensed.code).toBe(1);
    expect(unlicensed.stderr).not.toMatch(/\n\s+at /);
    expect(unlicensed.stderr).toMatch(
      /^error: account ds1\S+ holds no license to weights [0-9a-f]{64}\b[^\n]*\n$/,
    );
    expect(unlicensed.stderr).toMatch(/buy one first: deepshard weights buy/);

    const price = await json(["weights", "price", ...api]);
    expect(price).toMatchObject({ price: "100", accumulatedValue: "0", canonicalWeightsId: weightsId });

    const tooDear = await cli(["weights", "buy", "--max-price", "99", "--key", keyFile, ...api]);
    expect(tooDear.code).toBe(1);
    expect(tooDear.stderr).toMatch(/the price is 100, above --max-price 99/);
    const state = () => inference.daemon.ledger.state();
    const licenseKey = `${Buffer.from(net.keys[3]!.publicKey).toString("hex")}/${weightsId}`;
    expect(state().tables.licenses.has(licenseKey)).toBe(false);
    const bought = await json(["weights", "buy", "--max-price", "100", "--key", keyFile, ...api]);
    expect(bought).toMatchObject({ weightsId, price: "100" });
    await until(() => state().tables.licenses.has(licenseKey));

    // The fetch: every chunk, from both holders, into a folder `generate --model` loads.
    await until(
      async () => (await new WeightsClient(inference.daemon.apiUrl).inspect(weightsId)).holders.length === 2,
    );
    const out = join(dir, "model-copy");
    const fetched = await json(["weights", "fetch", "--out", out, ...api]);
    expect(fetched).toMatchObject({ weightsId, source: "peers", chunks: chunkCount, out });
    const holders = fetched.holders as { peer: string; chunks: number }[];
    expect(holders.map((h) => h.peer).sort()).toEqual(
      [a, b].map((n) => n.daemon.ledger.host.peerId.toString()).sort(),
    );
    for (const h of holders) expect(h.chunks).toBeGreaterThan(0);
    expect(holders.reduce((n, h) => n + h.chunks, 0)).toBe(chunkCount);
    expect((await readdir(out)).sort()).toEqual(["config.json", "model.safetensors"]);
    const metrics = await (await fetch(`${inference.daemon.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(
        `deepshard_chunk_transfers_total\\{[^}]*direction="received"[^}]*outcome="ok"[^}]*\\} ${chunkCount}\n`,
      ),
    );

    const client = new WeightsClient(inference.daemon.apiUrl);
    try {
      const reply = await client.generate({ prompt: "Seven plus five is", maxTokens: 6, seed: 3 });
      expect(reply).toMatchObject({ weightsId, finishReason: expect.stringMatching(/stop|length/) });
      expect(reply.tokens).toBeGreaterThan(0);
      expect(typeof reply.text).toBe("string");
      await expect(client.generate({ prompt: "" })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    } finally {
      await client.close();
    }
    const local = await cli([
      "generate",
      "--model",
      out,
      "--max-tokens",
      "4",
      "--seed",
      "3",
      "--json",
      "Seven",
    ]);
    expect(local.code, local.stderr).toBe(0);
    expect(JSON.parse(local.stdout.trim().split("\n").at(-1)!)).toMatchObject({ done: true });

    const inspect = await json(["weights", "inspect", ...api]);
    expect(inspect).toMatchObject({ weightsId, canonical: true, chunkCount, licensed: true });
    expect(inspect.replication).toMatchObject({ target: 2, min: 2, underReplicated: 0, placed: chunkCount });
    expect(inspect.history).toEqual([expect.objectContaining({ weightsId, round: -1 })]);

    const noTrainer = await cli(["trainer", "status", ...api]);
    expect(noTrainer.code).toBe(1);
    expect(noTrainer.stderr).toMatch(/does not run the trainer role/);
  }, 120_000);
});
