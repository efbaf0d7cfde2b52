/**
 * The validator role's weights part over real daemons: one training round with four trainers —
 * honest (trains with the round's recipe), dishonest (the trainer role's "base" knob: the base
 * weights unchanged), one whose revealed weights are the base plus noise (commit and reveal signed
 * here, its chunks served by another node's chunk store and announced nowhere, so the validator
 * must fetch them from the trainer's own peer), and one that reveals weights nobody serves. The
 * validator trains its replicas (restarted in between: they come from its disk), votes accept for
 * the honest trainer and reject with reasons for the others in one training.verdict, the ledger
 * slashes the three at the round's end, and a restart after the verdict sends no second one.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Round, trainingCommitment } from "@deepshard/ledger";
import type { KeyPair } from "@deepshard/protocol";
import { genesisCorpus, loadModel, modelFromWeights, Rng, readWeights, saveModel } from "@deepshard/tensor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChunkStore } from "../src/node/blobs/index.ts";
import { defaultConfig, type Role } from "../src/node/config.ts";
import { Daemon } from "../src/node/daemon.ts";
import type { NodeEvent } from "../src/node/events.ts";
import { createLogger } from "../src/node/logger.ts";
import { StorageService } from "../src/node/roles/storage/index.ts";
import { importModel } from "../src/node/roles/storage/models.ts";
import type { VerdictRecord } from "../src/node/roles/weights-validator/index.ts";
import { WeightsValidatorService } from "../src/node/roles/weights-validator/index.ts";
import type { RoleService } from "../src/node/service.ts";
import { testNodeConfig } from "./node-fixture.ts";
import {
  ANNOUNCE_MS,
  acceptData,
  CHAIN_ID,
  CHUNK_SIZE,
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
/** Node indices: the validator (also storage), the trainers, the node serving the noisy weights, a key only. */
const VALIDATOR = 0;
const HONEST = 1;
const BASE = 2;
const NOISY = 3;
const GHOST = 4;
let noisy: { weightsId: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-weights-validator-"));
  net = await makeWeightsNetwork(dir, [MAIN_BOND, SMALL_BOND, SMALL_BOND, 0n, 0n], {
    training: {
      commitWindow: 60,
      revealWindow: 20,
      verdictWindow: 30,
      // 24 examples in rows of 4: six steps per epoch, so replicas with other seeds see another order.
      hyperParameters: { learningRateMicro: 5000, epochs: 2, microBatch: 4 },
    },
  });
  // The base plus noise of 3% of each tensor's size: no training in it.
  const base = await loadModel(net.genesisDir);
  const rng = new Rng("noise");
  const weights = readWeights(base);
  for (const w of weights.values()) {
    let norm = 0;
    for (const x of w) norm += x * x;
    const scale = 0.03 * Math.sqrt(norm / w.length);
    for (let i = 0; i < w.length; i++) w[i]! += scale * rng.normal();
  }
  const model = modelFromWeights(base.config, weights);
  base.dispose();
  const noisyDir = join(dir, "noisy-model");
  await saveModel(model, noisyDir);
  model.dispose();
  const manifest = await importModel(await ChunkStore.open(net.pathsOf(NOISY).root), noisyDir, {
    chunkSize: CHUNK_SIZE,
  });
  noisy = { weightsId: manifest.weightsId };
});

afterAll(async () => {
  for (const d of running.splice(0).reverse()) await d.stop(5_000);
  await rm(dir, { recursive: true, force: true });
});

async function startNode(
  i: number,
  roles: Role[],
  services: Partial<Record<Role, () => RoleService>>,
  options: { bootstrap?: Daemon[]; seedGenesis?: boolean } = {},
): Promise<RunningNode> {
  const paths = net.pathsOf(i);
  if (options.seedGenesis) {
    await importModel(await ChunkStore.open(paths.root), net.genesisDir, { chunkSize: CHUNK_SIZE });
  }
  const config = testNodeConfig(CHAIN_ID, {
    roles,
    bootstrap: (options.bootstrap ?? []).flatMap((d) => d.ledger.host.addresses().map(String)),
    logLevel: "silent",
  });
  const daemon = await Daemon.start({
    paths,
    config,
    secretKey: net.keys[i]!.secretKey,
    logger: createLogger((process.env.TEST_LOG_LEVEL as "debug" | undefined) ?? "silent"),
    roles: services,
  });
  const events: NodeEvent[] = [];
  daemon.events.subscribe((e) => events.push(e.event));
  running.push(daemon);
  return { daemon, events };
}

/** The validator; restarted, it listens on a new port and dials the others itself. */
const startValidator = (bootstrap: Daemon[] = []) =>
  startNode(
    VALIDATOR,
    ["validator", "storage"],
    {
      validator: () => new WeightsValidatorService(undefined, { announceIntervalMs: ANNOUNCE_MS }),
      storage: () => new StorageService(defaultConfig(CHAIN_ID), { announceIntervalMs: ANNOUNCE_MS }),
    },
    { seedGenesis: true, bootstrap },
  );

async function stop(daemon: Daemon): Promise<void> {
  running.splice(running.indexOf(daemon), 1);
  await daemon.stop(5_000);
}

const pad = (n: number) => n.toString().padStart(12, "0");
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
const keyOf = (i: number) => hexOf(net.keys[i]!.publicKey);

/** A trainer simulated with signed transactions: commits `weightsId` in `round`, reveals later. */
class SignedTrainer {
  readonly salt = randomBytes(32);
  readonly key: KeyPair;
  readonly weightsId: string;
  constructor(key: KeyPair, weightsId: string) {
    this.key = key;
    this.weightsId = weightsId;
  }
  commit(daemon: Daemon, round: number) {
    const commitment = trainingCommitment(Buffer.from(this.weightsId, "hex"), this.salt);
    return submit(daemon, this.key, { type: "training.commit", round, commitment });
  }
  reveal(daemon: Daemon, round: number) {
    return submit(daemon, this.key, {
      type: "training.reveal",
      round,
      weightsId: Buffer.from(this.weightsId, "hex"),
      salt: this.salt,
    });
  }
}

function verdictEvents(node: RunningNode) {
  return node.events.filter((e) => e.type === "validator.verdict") as unknown as (NodeEvent & {
    round: number;
    tx: string;
    verdicts: VerdictRecord["verdicts"];
  })[];
}

describe("the weights validator", () => {
  it("judges a round (honest accepted, base, noise and missing weights rejected), slashes, never votes twice", async () => {
    let validator = await startValidator();
    const main = validator.daemon;
    const honest = await startWeightsNode(net, HONEST, {
      roles: ["validator", "trainer"],
      bootstrap: [main],
    });
    running.push(honest.daemon);
    const base = await startWeightsNode(net, BASE, {
      roles: ["validator", "trainer"],
      bootstrap: [main],
      behaviour: "base",
    });
    running.push(base.daemon);
    const server = await startNode(NOISY, ["informant"], {}, { bootstrap: [main] });
    const others = [honest.daemon, base.daemon, server.daemon];
    const noisyTrainer = new SignedTrainer(net.keys[NOISY]!, noisy.weightsId);
    const ghost = new SignedTrainer(net.keys[GHOST]!, randomBytes(32).toString("hex"));

    const text = genesisCorpus(24, "weights-validator-test").join("\n\n");
    await acceptData(net, main, { daemon: main, key: net.keys[VALIDATOR]! }, text);

    // The round the honest trainer makes it into (on a busy machine the first training may miss a
    // commit window: the round fails and the next opens); the signed trainers commit in each.
    let id = -1;
    const committed = new Set<number>();
    const state = () => validator.daemon.ledger.state();
    const round = (): Round => state().tables.rounds.get(pad(id))!;
    await until(async () => {
      const meta = state().tables.meta.get("meta")!;
      const open = meta.activeRound >= 0 ? state().tables.rounds.get(pad(meta.activeRound)) : undefined;
      if (open && open.status === "open" && !committed.has(open.id) && meta.height < open.commitEnd - 5) {
        committed.add(open.id);
        await noisyTrainer.commit(main, open.id);
        await ghost.commit(main, open.id);
      }
      if (open?.trainers[keyOf(HONEST)] && open.trainers[keyOf(BASE)] && committed.has(open.id)) {
        id = open.id;
      }
      return id >= 0;
    }, 90_000);

    // Replicas trained: a restart takes them from disk.
    await until(
      () => validator.events.some((e) => e.type === "validator.weights_prepared" && e.round === id),
      60_000,
    );
    expect(state().tables.meta.get("meta")!.height).toBeLessThan(round().revealEnd);
    await stop(validator.daemon);
    validator = await startValidator(others);
    await until(
      () => validator.events.some((e) => e.type === "validator.weights_prepared" && e.round === id),
      30_000,
    );
    const prepared = validator.events.find((e) => e.type === "validator.weights_prepared") as unknown as {
      replicas: { cached: boolean }[];
    };
    expect(prepared.replicas).toEqual([
      { cached: true, ms: null },
      { cached: true, ms: null },
    ]);

    // The signed trainers reveal in the reveal window.
    await until(() => state().tables.meta.get("meta")!.height > round().commitEnd, 30_000);
    await noisyTrainer.reveal(validator.daemon, id);
    await ghost.reveal(validator.daemon, id);

    // One verdict: the honest result reproduced bit for bit, the others rejected with reasons.
    await until(() => verdictEvents(validator).length > 0, 60_000);
    const [sent] = verdictEvents(validator);
    expect(sent!.round).toBe(id);
    const honestWeights = round().trainers[keyOf(HONEST)]!.weightsId;
    const byTrainer = new Map(sent!.verdicts.map((v) => [v.trainer, v]));
    expect(byTrainer.get(keyOf(HONEST))).toMatchObject({
      accept: true,
      replayed: true,
      reasons: [],
      weightsId: honestWeights,
    });
    expect(byTrainer.get(keyOf(BASE))).toMatchObject({ accept: false, weightsId: net.genesis.weightsId });
    expect(byTrainer.get(keyOf(BASE))!.reasons).toContain("weights_unchanged");
    expect(byTrainer.get(keyOf(NOISY))).toMatchObject({ accept: false, weightsId: noisy.weightsId });
    expect(byTrainer.get(keyOf(NOISY))!.reasons.length).toBeGreaterThan(0);
    expect(byTrainer.get(keyOf(GHOST))).toMatchObject({
      accept: false,
      reasons: ["weights_unavailable"],
      score: null,
      deviation: null,
    });
    // Judged models carry the judge's score and deviation; the noise strays further than the honest result.
    const deviation = (t: number) => byTrainer.get(keyOf(t))!.deviation!;
    expect(deviation(HONEST)).toBeGreaterThanOrEqual(0);
    expect(deviation(NOISY)).toBeGreaterThan(deviation(HONEST));
    // The noisy weights came from their trainer's own peer (nobody announces them).
    expect(
      validator.events.some(
        (e) => e.type === "validator.weights_fetched" && e.trainer === keyOf(NOISY) && e.source === "peers",
      ),
    ).toBe(true);

    // What the node shows.
    const report = (await (await fetch(`${validator.daemon.api.url}/validator/weights`)).json()) as {
      verdicts: VerdictRecord[];
    };
    expect(report.verdicts[0]).toMatchObject({ round: id, state: "sent", tx: sent!.tx, mode: "judged" });
    const metrics = await (await fetch(`${validator.daemon.api.url}/metrics`)).text();
    expect(metrics).toMatch(/deepshard_training_verdicts_total\{verdict="reject"[^}]*\} 3/);
    expect(metrics).toMatch(/deepshard_training_verdicts_total\{verdict="accept"[^}]*\} 1/);

    // Restarted once its verdict is in a block: no second verdict, the round settles.
    await until(
      async () => (await validator.daemon.ledger.findTx(Buffer.from(sent!.tx, "hex"))) !== undefined,
    );
    await stop(validator.daemon);
    validator = await startValidator(others);
    await until(() => round().status !== "open", 60_000);
    expect(round().status).toBe("completed");
    expect(round().canonicalWeightsId).toBe(honestWeights);
    expect(verdictEvents(validator)).toEqual([]);
    const me = keyOf(VALIDATOR);
    for (const t of [BASE, NOISY, GHOST]) expect(round().trainers[keyOf(t)]!.verdicts[me]).toBe(false);
    expect(round().trainers[keyOf(HONEST)]!.verdicts[me]).toBe(true);

    // The ledger slashed the three (≥ 2/3 of the stake rejected them): their stake is gone.
    const stake = state().tables.params.get("params")!.training.stake;
    const balance = (i: number) => state().tables.accounts.get(keyOf(i))!.balance;
    expect(balance(NOISY)).toBeLessThan(1_000_000n - stake);
    expect(balance(GHOST)).toBeLessThan(1_000_000n - stake);
    await until(() => base.events.some((e) => e.type === "trainer.outcome" && e.round === id));
    expect(base.events.find((e) => e.type === "trainer.outcome" && e.round === id)).toMatchObject({
      outcome: "slashed",
    });

    // Exactly one training.verdict of this validator in the blocks.
    let verdictTxs = 0;
    const height = state().tables.meta.get("meta")!.height;
    for (let h = round().revealEnd; h <= height; h++) {
      const block = await validator.daemon.ledger.block(h);
      for (const tx of block?.block.txs ?? []) {
        if (tx.payload.type === "training.verdict" && hexOf(tx.signer) === me) verdictTxs++;
      }
    }
    expect(verdictTxs).toBe(1);
  }, 240_000);
});
