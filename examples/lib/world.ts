/**
 * The small devnet every example runs on: four `deepshard node start` processes on loopback, started
 * from the geocentric genesis model of 1609 (galileo/genesis.ts).
 *
 *   node-0, node-1  validator + storage + trainer (honest)
 *   node-2          validator + storage + trainer with DEEPSHARD_TRAINER_BEHAVIOUR=poison (the
 *                   demo knob: it trains on the batch plus text nobody accepted)
 *   node-3          informant + inference (not a validator, so its balance moves only by what it does)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeepshardClient, Devnet, type DevnetManifest, type DevnetNode, prepareDevnet } from "@deepshard/cli";
import type { ParamsOverrides } from "@deepshard/ledger";
import { GEOCENTRIC_RECIPE, type GeocentricRecipe, writeGeocentricGenesis } from "../galileo/genesis.ts";

/** Short windows and a learning rate large enough that one accepted text visibly moves the model. */
export const WORLD_PARAMS: ParamsOverrides = {
  downtime: { window: 10_000, minSignedBps: 1_000 },
  data: { votingWindow: 16, minStake: 10n },
  training: {
    batchSize: 1,
    commitWindow: 50,
    revealWindow: 30,
    verdictWindow: 60,
    hyperParameters: { learningRateMicro: 10_000, epochs: 6, microBatch: 4 },
  },
};

export interface WorldOptions {
  /** Genesis pretraining steps (default GEOCENTRIC_RECIPE.steps). */
  genesisSteps?: number | undefined;
  /** Told what is happening. */
  log?: ((line: string) => void) | undefined;
}

export interface World {
  dir: string;
  manifest: DevnetManifest;
  devnet: Devnet;
  /** The genesis model folder (what every node starts from). */
  genesisDir: string;
  validators: DevnetNode[];
  honestTrainers: DevnetNode[];
  poisoner: DevnetNode;
  informant: DevnetNode;
  stop(): Promise<void>;
}

export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const log = options.log ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), "deepshard-example-"));
  try {
    const recipe: GeocentricRecipe = {
      ...GEOCENTRIC_RECIPE,
      steps: options.genesisSteps ?? GEOCENTRIC_RECIPE.steps,
    };
    log(`training the genesis model of 1609 (${recipe.steps} steps on a geocentric corpus)`);
    const genesisDir = await writeGeocentricGenesis(dir, recipe);
    const manifest = await prepareDevnet({
      dir,
      model: genesisDir,
      recipe,
      roles: [
        ["validator", "trainer", "storage"],
        ["validator", "trainer", "storage"],
        ["validator", "trainer", "storage"],
        ["informant", "inference"],
      ],
      params: WORLD_PARAMS,
      chunkSize: 4096,
      env: { 2: { DEEPSHARD_TRAINER_BEHAVIOUR: "poison" } },
    });
    log("starting 4 nodes on 127.0.0.1");
    const devnet = await Devnet.start(manifest, {
      logLevel: "warn",
      env: { DEEPSHARD_BLOCK_INTERVAL_MS: "300" },
    });
    await settled(devnet).catch(async (err: unknown) => {
      await devnet.stop();
      throw err;
    });
    const [n0, n1, n2, n3] = ["node-0", "node-1", "node-2", "node-3"].map((n) => devnet.node(n));
    return {
      dir,
      manifest,
      devnet,
      genesisDir,
      validators: [n0!, n1!, n2!],
      honestTrainers: [n0!, n1!],
      poisoner: n2!,
      informant: n3!,
      async stop() {
        await devnet.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Polls `check` until it gives a value; throws after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Until every node sees all the others and a few blocks went by with them: a transaction sent
 * before the gossip mesh forms reaches no proposer and is not sent again.
 */
async function settled(devnet: Devnet): Promise<void> {
  const clients = devnet.nodes.map((n) => new DeepshardClient(n.api));
  try {
    let since: number | undefined;
    await until(
      "the devnet's nodes connected",
      async () => {
        const all = await Promise.all(clients.map((c) => c.status()));
        const low = Math.min(...all.map((s) => s.height));
        if (all.some((s) => s.peers < clients.length - 1)) since = undefined;
        else since ??= low;
        return since !== undefined && low >= since + 4 ? true : undefined;
      },
      60_000,
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}
