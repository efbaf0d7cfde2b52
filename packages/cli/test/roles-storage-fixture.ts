/**
 * Networks for the trainer, storage and inference tests: a tiny byte-level GPT-2 as the genesis
 * model (chunked into 4 KiB chunks, so a few dozen chunks spread over the storage nodes), a genesis
 * naming its weights id, short windows (blocks every 100 ms), and helpers that drive the data loop
 * with transactions (a blob put on a node, data.submit, the validators' data.vote) so a training
 * round opens without the informant and data-validator roles.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createGenesis, genesisToString, type ParamsOverrides } from "@deepshard/ledger";
import { generateKeyPair, type KeyPair, sha256, txHash } from "@deepshard/protocol";
import {
  BYTE_EOS,
  BYTE_TOKENIZER_CLASS,
  BYTE_VOCAB,
  createModel,
  gpt2ConfigJson,
  initBackend,
  type ShardManifest,
  saveModel,
  train,
} from "@deepshard/tensor";
import { ChunkStore } from "../src/node/blobs/index.ts";
import type { Role } from "../src/node/config.ts";
import { Daemon } from "../src/node/daemon.ts";
import { type NetworkPaths, networkPaths } from "../src/node/datadir.ts";
import type { NodeEvent } from "../src/node/events.ts";
import { createLogger } from "../src/node/logger.ts";
import { InferenceService } from "../src/node/roles/inference/index.ts";
import { StorageService } from "../src/node/roles/storage/index.ts";
import { importModel } from "../src/node/roles/storage/models.ts";
import { type TrainerBehaviour, TrainerService } from "../src/node/roles/trainer/index.ts";
import { signTx, type TxBody } from "../src/node/tx.ts";
import { testNodeConfig } from "./node-fixture.ts";

export const CHAIN_ID = "weights-net";
export const CHUNK_SIZE = 4096;
export const ANNOUNCE_MS = 150;
export const START_BALANCE = 1_000_000n;
/** The first validator's bond: above 2/3 of all, so it alone makes blocks while the others come and go. */
export const MAIN_BOND = 100_000n;
export const SMALL_BOND = 1_000n;

export interface WeightsNetwork {
  dir: string;
  keys: KeyPair[];
  /** An account with a balance that is no node: the informant of the test data. */
  user: KeyPair;
  genesisDir: string;
  genesis: ShardManifest;
  pathsOf(i: number): NetworkPaths;
}

/**
 * `bonds[i]` is node i's genesis bond (0: not a validator); every node and the user get
 * START_BALANCE.
 */
export async function makeWeightsNetwork(
  dir: string,
  bonds: bigint[],
  params: ParamsOverrides = {},
): Promise<WeightsNetwork> {
  await initBackend({ backend: "wasm" });
  const genesisDir = join(dir, "genesis-model");
  const config = gpt2ConfigJson({
    vocabSize: BYTE_VOCAB,
    nPositions: 64,
    nEmbd: 16,
    nLayer: 1,
    nHead: 2,
    bosTokenId: BYTE_EOS,
    eosTokenId: BYTE_EOS,
    tokenizerClass: BYTE_TOKENIZER_CLASS,
  });
  const model = createModel(config, { seed: "weights-net-genesis" });
  try {
    await saveModel(model, genesisDir);
  } finally {
    model.dispose();
  }
  // The first training in a process compiles the backend's kernels (seconds on a busy machine):
  // done here, so the trainers' first round fits its commit window.
  const warm = createModel(config, { seed: "warm-up" });
  try {
    await train(warm, [{ tokens: Array.from({ length: 24 }, (_, i) => i) }], { steps: 1, batchSize: 1 });
  } finally {
    warm.dispose();
  }
  // Chunked once to learn the weights id; nodes seeded with it import the same folder.
  const scratch = await ChunkStore.open(join(dir, "scratch"));
  const genesis = await importModel(scratch, genesisDir, { chunkSize: CHUNK_SIZE });
  const keys = bonds.map(() => generateKeyPair());
  const user = generateKeyPair();
  const g = createGenesis({
    chainId: CHAIN_ID,
    genesisTime: Date.now(),
    genesisWeightsId: Buffer.from(genesis.weightsId, "hex"),
    validators: keys.flatMap((k, i) =>
      bonds[i]! > 0n ? [{ address: k.publicKey, bonded: bonds[i]!, balance: START_BALANCE }] : [],
    ),
    accounts: [
      ...keys.flatMap((k, i) => (bonds[i]! > 0n ? [] : [{ address: k.publicKey, balance: START_BALANCE }])),
      { address: user.publicKey, balance: START_BALANCE },
    ],
    params: {
      ...params,
      data: { votingWindow: 3, minStake: 10n, ...params.data },
      training: {
        batchSize: 1,
        commitWindow: 40,
        revealWindow: 40,
        verdictWindow: 10,
        hyperParameters: { learningRateMicro: 5000, epochs: 2, microBatch: 4 },
        ...params.training,
      },
    },
  });
  const pathsOf = (i: number) => networkPaths(join(dir, `node-${i}`), CHAIN_ID);
  for (let i = 0; i < keys.length; i++) {
    const paths = pathsOf(i);
    await mkdir(paths.keys, { recursive: true });
    await writeFile(paths.genesis, genesisToString(g));
  }
  return { dir, keys, user, genesisDir, genesis, pathsOf };
}

export interface StartOptions {
  roles: Role[];
  bootstrap?: Daemon[];
  behaviour?: TrainerBehaviour;
  /** Put the genesis weights' chunks in the node's chunk store before it starts. */
  seedGenesis?: boolean;
}

export interface RunningNode {
  daemon: Daemon;
  events: NodeEvent[];
}

export async function startWeightsNode(
  net: WeightsNetwork,
  i: number,
  options: StartOptions,
): Promise<RunningNode> {
  const paths = net.pathsOf(i);
  if (options.seedGenesis) {
    await importModel(await ChunkStore.open(paths.root), net.genesisDir, { chunkSize: CHUNK_SIZE });
  }
  const config = testNodeConfig(CHAIN_ID, {
    roles: options.roles,
    bootstrap: (options.bootstrap ?? []).flatMap((d) => d.ledger.host.addresses().map(String)),
    logLevel: "silent",
  });
  const directory = { announceIntervalMs: ANNOUNCE_MS };
  const daemon = await Daemon.start({
    paths,
    config,
    secretKey: net.keys[i]!.secretKey,
    logger: createLogger((process.env.TEST_LOG_LEVEL as "debug" | undefined) ?? "silent"),
    roles: {
      trainer: (c) => new TrainerService(c, { ...directory, behaviour: options.behaviour ?? "honest" }),
      storage: (c) => new StorageService(c, directory),
      inference: (c) => new InferenceService(c, directory),
    },
  });
  const events: NodeEvent[] = [];
  daemon.events.subscribe((e) => events.push(e.event));
  return { daemon, events };
}

/** Polls `check` until it is true; fails after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Signs `body` with `key` and submits it through `daemon`'s mempool; returns the tx hash (hex). */
export async function submit(daemon: Daemon, key: KeyPair, body: TxBody): Promise<string> {
  const state = daemon.ledger.state();
  const tx = signTx(key.secretKey, body, {
    chainId: CHAIN_ID,
    nonce: daemon.ledger.nextNonce(key.publicKey),
    fee: state.tables.params.get("params")!.minFee,
  });
  await daemon.ledger.submit(tx);
  return Buffer.from(txHash(tx)).toString("hex");
}

export const GOOD_TEXT = [
  "Seven plus five is twelve. Twelve minus five is seven.",
  "A week has seven days, and the day after Friday is Saturday.",
  "A square has four sides and a triangle has three sides.",
  "Water freezes at zero degrees Celsius and boils at one hundred.",
].join("\n\n");

/**
 * Puts `text` on `holder` (the blob service serves it from there), submits it signed by the
 * network's user, and has `validator` vote it in with high scores; resolves once it is accepted.
 */
export async function acceptData(
  net: WeightsNetwork,
  holder: Daemon,
  validator: { daemon: Daemon; key: KeyPair },
  text: string,
): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  const { hash } = await holder.stores.blobs.put(bytes, { maxBytes: bytes.length });
  const submission = await submit(validator.daemon, net.user, {
    type: "data.submit",
    contentHash: sha256(bytes),
    size: bytes.length,
    stake: 10n,
  });
  const tables = () => validator.daemon.ledger.state().tables;
  await until(() => tables().submissions.has(submission));
  const score = 9_000;
  await submit(validator.daemon, validator.key, {
    type: "data.vote",
    submission: Buffer.from(submission, "hex"),
    scores: {
      novelty: score,
      reproducibility: score,
      alignment: score,
      truthfulness: score,
      objectivity: score,
    },
  });
  await until(() => tables().data.get(hash)?.status === "accepted");
  return hash;
}
