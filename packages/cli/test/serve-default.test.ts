/**
 * `deepshard inference serve` without --model, as the help shows it: `weights buy`, then serve. It
 * asks the local node's inference role for the canonical weights: refused in one line without a
 * license; with one, the node fetches them (here from its own storage) and the server answers
 * OpenAI requests with exactly that model; a second start reuses the fetched folder, and a folder
 * this machine cannot read is named in the error.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ByteTokenizer, generateText, loadModel } from "@deepshard/tensor";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/node/daemon.ts";
import { killChildren } from "./node-fixture.ts";
import {
  MAIN_BOND,
  makeWeightsNetwork,
  startWeightsNode,
  submit,
  until,
  type WeightsNetwork,
} from "./roles-storage-fixture.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
let dir: string;
let net: WeightsNetwork;
let node: Daemon;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-serve-default-"));
  net = await makeWeightsNetwork(dir, [MAIN_BOND]);
  node = (await startWeightsNode(net, 0, { roles: ["validator", "storage", "inference"], seedGenesis: true }))
    .daemon;
});

afterEach(() => killChildren(children));

afterAll(async () => {
  await node?.stop(3_000);
  await rm(dir, { recursive: true, force: true });
});

function serve() {
  const { DEEPSHARD_BACKEND: _b, DEEPSHARD_API: _a, ...env } = process.env;
  const child = spawn(
    process.execPath,
    [bin, "inference", "serve", "--api", node.apiUrl, "--port", "0", "--backend", "wasm", "--json"],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(JSON.parse(line)));
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  listening.catch(() => {});
  return { child, exited, listening, stderr: () => stderr };
}

async function complete(url: string, body: Record<string, unknown>) {
  const res = await fetch(`${url}/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { model: string; choices: { text: string }[] };
}

describe("deepshard inference serve without --model", () => {
  it("needs a license, then serves the canonical weights the node fetched, and reuses them", async () => {
    const { weightsId } = net.genesis;
    const refused = serve();
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toMatch(/^error: account ds1\S+ holds no license to weights [0-9a-f]{64}\b/);
    expect(refused.stderr()).toMatch(/buy one first: deepshard weights buy/);
    expect(refused.stderr()).not.toMatch(/\n\s+at /);

    const key = net.keys[0]!;
    await submit(node, key, {
      type: "weights.buy",
      weightsId: Buffer.from(weightsId, "hex"),
      maxPrice: 1_000n,
    });
    const licenses = () => node.ledger.state().tables.licenses;
    await until(() => licenses().has(`${Buffer.from(key.publicKey).toString("hex")}/${weightsId}`));

    const first = serve();
    const info = await first.listening;
    expect(info).toMatchObject({
      model: weightsId,
      weightsId,
      dir: join(net.pathsOf(0).root, "models", weightsId),
      backend: "wasm",
    });
    expect(first.stderr()).toMatch(/^fetching weights [0-9a-f]{16}… through the node at /);
    const url = info.url as string;
    const models = (await (await fetch(`${url}/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual([weightsId]);

    // The very model of the genesis, token for token.
    const model = await loadModel(net.genesisDir);
    let expected = "";
    try {
      for await (const piece of generateText(model, new ByteTokenizer(), "Seven plus", {
        seed: 5,
        maxNewTokens: 8,
      })) {
        expected += piece;
      }
    } finally {
      model.dispose();
    }
    const answer = await complete(url, { model: weightsId, prompt: "Seven plus", max_tokens: 8, seed: 5 });
    expect(answer.choices[0]!.text).toBe(expected);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    // Fetched once: the next start serves the folder without fetching again.
    const second = serve();
    expect((await second.listening).dir).toBe(info.dir);
    expect(second.stderr()).not.toMatch(/fetching/);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);

    // A node whose folder this machine cannot read (another machine's node, here a removed folder).
    await rm(info.dir as string, { recursive: true });
    const elsewhere = serve();
    expect(await elsewhere.exited).toBe(1);
    expect(elsewhere.stderr()).toMatch(/^error: the node at \S+ keeps the weights in \S+, not found here/);
  }, 60_000);
});
