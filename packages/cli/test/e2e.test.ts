/**
 * The whole cycle on a devnet of node processes (as `deepshard devnet` runs them): three
 * validators that store shards, two informants (one submits good text, the other a copy of it),
 * three trainers (one dishonest: it returns the base weights) and an inference node. The data loop
 * accepts and rewards the good text and slashes the copy; the training round it opens ends with
 * the dishonest trainer slashed and the honest ones rewarded; the new canonical weights fit the
 * accepted text better than genesis; the inference node buys a license at the risen price,
 * fetches, verifies and generates; all nodes agree on the state root and the supply adds up. An
 * OpenAI server (`deepshard inference serve`) started on the genesis weights switches to the new
 * canonical ones once the node holds their license, and answers with them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { ParamsOverrides } from "@deepshard/ledger";
import { readKeystore } from "@deepshard/protocol";
import { evaluateTexts, generateText, initBackend, loadModel, tokenizerFor } from "@deepshard/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeepshardClient } from "../src/node/client.ts";
import { networkPaths } from "../src/node/datadir.ts";
import {
  DEVNET_PASSPHRASE,
  Devnet,
  type DevnetEvent,
  type DevnetManifest,
  genesisModel,
  prepareDevnet,
} from "../src/node/devnet.ts";
import { InformantClient } from "../src/node/roles/informant/client.ts";
import { WeightsClient } from "../src/node/roles/storage/client.ts";
import { killChildren } from "./node-fixture.ts";

const RECIPE = { steps: 20, batchSize: 8, context: 64, nEmbd: 16, nLayer: 1, nHead: 2 };
const PARAMS: ParamsOverrides = {
  downtime: { window: 10_000, minSignedBps: 1_000 },
  data: { votingWindow: 16, minStake: 10n },
  training: {
    batchSize: 1,
    commitWindow: 50,
    revealWindow: 30,
    verdictWindow: 60,
    hyperParameters: { learningRateMicro: 5000, epochs: 2, microBatch: 4 },
  },
};

const GOOD_TEXT = [
  "Seven plus five is twelve. Twelve minus five is seven.",
  "A week has seven days, and the day after Friday is Saturday.",
  "A square has four sides and a triangle has three sides.",
  "Water freezes at zero degrees Celsius and boils at one hundred.",
].join("\n\n");

let dir: string;
let manifest: DevnetManifest;
let devnet: Devnet | undefined;
const events: DevnetEvent[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-e2e-"));
  manifest = await prepareDevnet({
    dir,
    roles: [
      ["validator", "informant", "trainer", "storage", "inference"],
      ["validator", "informant", "trainer", "storage"],
      ["validator", "trainer", "storage"],
    ],
    recipe: RECIPE,
    params: PARAMS,
    chunkSize: 4096,
    env: { 2: { DEEPSHARD_TRAINER_BEHAVIOUR: "base" } },
  });
  devnet = await Devnet.start(manifest, { logLevel: "warn", env: { DEEPSHARD_BLOCK_INTERVAL_MS: "300" } });
  devnet.subscribe((e) => events.push(e));
}, 120_000);

afterAll(async () => {
  await killChildren(children);
  await devnet?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const exited = events.filter((e) => e.event.type === "devnet.node_exited");
      throw new Error(
        `${what}: not within ${timeoutMs} ms${exited.length ? `; ${JSON.stringify(exited)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** `deepshard inference serve --json` of the node's canonical weights, its stdout as JSON lines. */
function serveCanonical(api: string) {
  const { DEEPSHARD_BACKEND: _b, DEEPSHARD_API: _a, ...env } = process.env;
  const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
  const args = ["inference", "serve", "--api", api, "--port", "0", "--backend", "wasm", "--json"];
  const child = spawn(process.execPath, [bin, ...args, "--follow-every", "1"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on("line", (line) => lines.push(JSON.parse(line)));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const line = (what: string, match: (l: Record<string, unknown>) => boolean, timeoutMs: number) =>
    until(
      `serve: ${what} (stderr: ${stderr})`,
      async () => (child.exitCode !== null ? null : lines.find(match)),
      timeoutMs,
    ).then((l) => {
      if (l === null) throw new Error(`serve exited with ${child.exitCode}: ${stderr}`);
      return l;
    });
  return { child, exited, line, stderr: () => stderr };
}

interface TrainerRound {
  round: number;
  outcome?: string;
  canonical?: boolean;
}

describe("the whole cycle on a devnet", () => {
  it("accepts good data, slashes junk, trains, settles, sells and serves the new weights, and agrees", async () => {
    const d = devnet!;
    const [n0, n1, n2] = [d.node("node-0"), d.node("node-1"), d.node("node-2")];
    const clients = d.nodes.map((n) => new DeepshardClient(n.api));
    const weights = d.nodes.map((n) => new WeightsClient(n.api));
    try {
      const priceBefore = (await clients[0]!.status()).price;

      // Data loop: the good text in, then a copy of it from the other informant.
      const good = await new InformantClient(n0.api).submit(new TextEncoder().encode(GOOD_TEXT), {
        stake: 100n,
      });
      const accepted = await new InformantClient(n0.api).waitForOutcome(good.submission, {
        timeoutMs: 90_000,
      });
      expect(accepted.status).toBe("accepted");
      expect(accepted.net).toBeGreaterThan(0n);
      const junkText = `${GOOD_TEXT.replaceAll("\n\n", "\n\n\n")}\n`;
      const junk = await new InformantClient(n1.api).submit(new TextEncoder().encode(junkText), {
        stake: 150n,
      });
      const rejected = await new InformantClient(n1.api).waitForOutcome(junk.submission, {
        timeoutMs: 90_000,
      });
      expect(rejected.status).toBe("rejected");
      expect(rejected.net).toBe(-150n);

      // An OpenAI server of the canonical weights, still genesis: it needs their license first.
      const key = await readKeystore(networkPaths(n0.dataDir, manifest.chainId).nodeKey, DEVNET_PASSPHRASE);
      const genesisLicense = await clients[0]!.send(
        key.secretKey,
        {
          type: "weights.buy",
          weightsId: Buffer.from(manifest.weightsId, "hex"),
          maxPrice: (await clients[0]!.status()).price,
        },
        { wait: true },
      );
      expect(genesisLicense.code).toBe(0);
      const server = serveCanonical(n0.api);
      const listening = await server.line("listening", (l) => typeof l.url === "string", 60_000);
      expect(listening).toMatchObject({ weightsId: manifest.weightsId, following: true });

      // Training loop: the accepted text opened a round; it settles with the dishonest trainer
      // slashed and the honest ones rewarded (a round the honest ones missed on a busy machine
      // fails and the next one opens, so the test looks for the round where all three took part).
      const roundsOf = async (i: number) =>
        ((await weights[i]!.trainerStatus()).rounds as TrainerRound[] | undefined) ?? [];
      const settled = await until(
        "a round with all three trainers settled",
        async () => {
          const [r0, r1, r2] = await Promise.all([roundsOf(0), roundsOf(1), roundsOf(2)]);
          for (const bad of r2) {
            const h0 = r0.find((r) => r.round === bad.round);
            const h1 = r1.find((r) => r.round === bad.round);
            if (bad.outcome && h0?.outcome && h1?.outcome) return { bad, h0, h1 };
          }
          return undefined;
        },
        300_000,
      );
      expect(settled.bad.outcome).toBe("slashed");
      expect(settled.h0.outcome).toBe("rewarded");
      expect(settled.h1.outcome).toBe("rewarded");
      const canonical = (await clients[0]!.status()).canonicalWeightsId;
      expect(canonical).not.toBe(manifest.weightsId);

      // Inference: a license at the risen price, the weights fetched and verified, text generated.
      const status = await clients[0]!.status();
      expect(status.price).toBeGreaterThan(priceBefore);
      // The server sees the new weights and says once why it keeps serving genesis for now.
      const waiting = `the canonical weights are now ${canonical.slice(0, 16)}…, still serving`;
      await until(
        "serve to tell it needs a license",
        async () => server.stderr().includes(waiting) || undefined,
        30_000,
      );
      expect(server.stderr()).toContain("holds no license");
      const bought = await clients[0]!.send(
        key.secretKey,
        { type: "weights.buy", weightsId: Buffer.from(canonical, "hex"), maxPrice: status.price },
        { wait: true },
      );
      expect(bought.code).toBe(0);
      const out = join(dir, "fetched");
      await weights[0]!.fetch({ weightsId: canonical, out });
      const job = await weights[0]!.waitForFetch(canonical, undefined, { timeoutMs: 60_000 });
      expect(job.state).toBe("done");
      const text = await weights[0]!.generate({ prompt: "Seven plus", maxTokens: 12, seed: 1 });
      expect(text.weightsId).toBe(canonical);
      expect(text.text.length).toBeGreaterThan(0);

      // The server switched to them (the license is held now) and answers with them, also to the
      // genesis id its clients knew.
      const switched = await server.line("the switch", (l) => l.event === "switched", 60_000);
      expect(switched).toMatchObject({ weightsId: canonical, model: canonical });
      const served = await fetch(`${listening.url}/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: manifest.weightsId, prompt: "Seven plus", max_tokens: 12, seed: 1 }),
      });
      expect(served.status).toBe(200);
      const completion = (await served.json()) as { model: string; choices: { text: string }[] };
      expect(completion.model).toBe(canonical);

      // The new weights fit the accepted text better than genesis.
      await initBackend({ backend: "wasm" });
      const before = await loadModel(await genesisModel(dir, RECIPE));
      const after = await loadModel(out);
      try {
        const lossBefore = evaluateTexts(before, [GOOD_TEXT]).meanCrossEntropy;
        const lossAfter = evaluateTexts(after, [GOOD_TEXT]).meanCrossEntropy;
        expect(lossAfter).toBeLessThan(lossBefore);
        let expected = "";
        const options = { seed: 1, maxNewTokens: 12 };
        for await (const piece of generateText(after, tokenizerFor(after.config), "Seven plus", options)) {
          expected += piece;
        }
        expect(completion.choices[0]!.text).toBe(expected);
      } finally {
        before.dispose();
        after.dispose();
      }

      // Every node: the same app hash at a common height, and the supply invariant.
      const heights = await Promise.all(clients.map(async (c) => (await c.status()).height));
      const common = Math.min(...heights);
      const hashes = await Promise.all(clients.map(async (c) => (await c.block(common)).appHash));
      expect(new Set(hashes).size).toBe(1);
      for (const c of clients) expect((await c.supply()).holds).toBe(true);
      expect(n2.roles).toContain("trainer");
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
    } finally {
      for (const c of [...clients, ...weights]) await c.close();
    }
  }, 480_000);
});
