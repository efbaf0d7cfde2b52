/**
 * The trainer role over real daemons: a round opens on accepted data, an honest trainer (which
 * fetches the base weights from a storage node) and a dishonest one (the "base" test knob) commit
 * and reveal, the honest trainer is killed between its commit and its reveal and still reveals
 * after a restart, its weights are fetchable by weights id, and the validator's verdicts settle
 * the round (honest rewarded and canonical, dishonest slashed).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Round } from "@deepshard/ledger";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/node/daemon.ts";
import { WeightsDirectory } from "../src/node/roles/storage/directory.ts";
import { chunkModel } from "../src/node/roles/storage/models.ts";
import {
  acceptData,
  GOOD_TEXT,
  MAIN_BOND,
  makeWeightsNetwork,
  type RunningNode,
  SMALL_BOND,
  startWeightsNode,
  submit,
  until,
  type WeightsNetwork,
} from "./roles-storage-fixture.ts";

let dir: string;
let net: WeightsNetwork;
const running: Daemon[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-trainer-"));
  // 0: the main validator, storing the genesis weights; 1: honest trainer; 2: dishonest trainer.
  net = await makeWeightsNetwork(dir, [MAIN_BOND, SMALL_BOND, SMALL_BOND], {
    training: { commitWindow: 40, revealWindow: 20, verdictWindow: 5 },
  });
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

async function stop(daemon: Daemon): Promise<void> {
  running.splice(running.indexOf(daemon), 1);
  await daemon.stop(3_000);
}

const pad = (n: number) => n.toString().padStart(12, "0");
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("the trainer role", () => {
  it("trains, commits, survives a restart between commit and reveal, reveals, and serves its weights", async () => {
    const main = await start(0, { roles: ["validator", "storage"], seedGenesis: true });
    let honest = await start(1, { roles: ["validator", "trainer"], bootstrap: [main.daemon] });
    const dishonest = await start(2, {
      roles: ["validator", "trainer"],
      bootstrap: [main.daemon],
      behaviour: "base",
    });
    const ledger = main.daemon.ledger;
    // The round the honest trainer makes it into (the first training on a busy machine may miss
    // a commit window: a failed round returns its batch and the next one opens at once).
    let id = -1;
    const round = (): Round => ledger.state().tables.rounds.get(pad(id))!;
    const honestKey = hexOf(net.keys[1]!.publicKey);
    const dishonestKey = hexOf(net.keys[2]!.publicKey);

    await acceptData(net, main.daemon, { daemon: main.daemon, key: net.keys[0]! }, GOOD_TEXT);
    await until(() => {
      for (const r of ledger.state().tables.rounds.values()) {
        if (r.status === "open" && r.trainers[honestKey]) id = r.id;
      }
      return id >= 0;
    }, 60_000);
    expect(round().baseWeightsId).toBe(net.genesis.weightsId);
    expect(ledger.state().tables.meta.get("meta")!.height).toBeLessThanOrEqual(round().commitEnd);
    const trained = honest.events.find((e) => e.type === "trainer.trained") as unknown as {
      weightsId: string;
    };
    expect(trained.weightsId).toMatch(/^[0-9a-f]{64}$/);
    expect(trained.weightsId).not.toBe(net.genesis.weightsId);
    await stop(honest.daemon);
    honest = await start(1, { roles: ["validator", "trainer"], bootstrap: [main.daemon] });

    // Both reveal in the reveal window; the dishonest one names the base weights unchanged.
    await until(
      () => round().trainers[honestKey]?.weightsId !== "" && round().trainers[dishonestKey]?.weightsId !== "",
      30_000,
    );
    expect(round().trainers[honestKey]!.weightsId).toBe(trained.weightsId);
    expect(round().trainers[dishonestKey]!.weightsId).toBe(net.genesis.weightsId);
    expect(honest.events.some((e) => e.type === "trainer.reveal")).toBe(true);
    expect(honest.events.some((e) => e.type === "trainer.trained" && e.round === id)).toBe(false);

    // A validator fetches the trainer's weights by weights id from the holders it announces.
    const directory = WeightsDirectory.of(main.daemon.ledger.host)!;
    {
      await until(() => directory.announcers(trained.weightsId).length > 0);
      const manifest = await main.daemon.stores.blobClient.fetchManifest(
        trained.weightsId,
        directory.announcers(trained.weightsId).map((p) => directory.target(p.peerId)),
      );
      const out = join(dir, "fetched");
      const fetched = await main.daemon.stores.blobClient.fetchWeights(
        manifest,
        directory.holders(trained.weightsId, manifest.chunkCount),
        { dir: out },
      );
      expect(fetched.files).toEqual(["config.json", "model.safetensors"]);
      expect((await chunkModel(out, { chunkSize: manifest.chunkSize })).weightsId).toBe(trained.weightsId);
    }

    // Verdicts: the honest weights accepted, the base weights rejected; the round settles.
    await until(() => ledger.state().tables.meta.get("meta")!.height > round().revealEnd, 30_000);
    const verdicts = [
      { trainer: net.keys[1]!.publicKey, accept: true, reasons: [] },
      { trainer: net.keys[2]!.publicKey, accept: false, reasons: ["no_progress"] },
    ].sort((a, b) => Buffer.compare(Buffer.from(a.trainer), Buffer.from(b.trainer)));
    await submit(main.daemon, net.keys[0]!, { type: "training.verdict", round: id, verdicts });
    await until(() => round().status === "completed", 30_000);
    expect(ledger.state().tables.meta.get("meta")!.canonicalWeightsId).toBe(trained.weightsId);
    const outcome = (n: RunningNode) => n.events.find((e) => e.type === "trainer.outcome" && e.round === id);
    await until(() => outcome(honest) !== undefined && outcome(dishonest) !== undefined);
    expect(outcome(honest)).toMatchObject({
      outcome: "rewarded",
      canonical: true,
    });
    expect(outcome(dishonest)).toMatchObject({ outcome: "slashed" });

    // `deepshard trainer status` shows the round and its outcome.
    const { stdout } = await promisify(execFile)(process.execPath, [
      join(import.meta.dirname, "..", "bin", "deepshard.js"),
      "trainer",
      "status",
      "--json",
      "--api",
      honest.daemon.apiUrl,
    ]);
    const status = JSON.parse(stdout);
    expect(status).toMatchObject({ behaviour: "honest", activeRound: null });
    expect(status.rounds).toContainEqual(
      expect.objectContaining({
        round: id,
        weightsId: trained.weightsId,
        outcome: "rewarded",
        canonical: true,
      }),
    );

    // The storage node takes the new canonical weights.
    await until(
      () =>
        main.daemon.stores.chunks.indices(trained.weightsId).length ===
        manifestCount(main.daemon, trained.weightsId),
    );
  }, 120_000);
});

function manifestCount(daemon: Daemon, weightsId: string): number {
  return daemon.stores.chunks.manifest(weightsId)?.chunkCount ?? -1;
}
