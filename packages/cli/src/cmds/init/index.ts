import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { createGenesis, type Genesis, loadGenesis, writeGenesis } from "@deepshard/ledger";
import {
  DeepshardError,
  encodeAddress,
  generateKeyPair,
  isDeepshardError,
  parseAddress,
  peerIdFromSecret,
  writeKeystore,
} from "@deepshard/protocol";
import type { Command } from "commander";
import { defaultConfig, mergeConfig, writeConfigFile } from "../../node/config.ts";
import { exists, networkPaths, resolveDataDir } from "../../node/datadir.ts";
import { parseAmount } from "../../node/tx.ts";
import { chunkModel } from "../../node/weights-id.ts";
import { printResult } from "../../util/output.ts";
import { resolvePassphrase } from "../../util/passphrase.ts";

interface InitOptions {
  chainId?: string;
  join?: string;
  validators: string;
  stake: string;
  balance: string;
  alloc: string[];
  model?: string;
  dataDir?: string;
  roles?: string;
  listen?: string;
  bootstrap?: string;
  apiPort?: string;
  force?: boolean;
  passphraseFile?: string;
  json?: boolean;
}

const MAX_INIT_VALIDATORS = 100;

const collect = (value: string, previous: string[]) => [...previous, value];

/** `deepshard init`: keys, config and genesis of a new network, or of one to join. */
export function registerInit(program: Command): void {
  program
    .command("init")
    .description("create a node's data directory: its key, config and the network's genesis")
    .option("--chain-id <id>", "the new network's id (with --join: must match the genesis)")
    .option("--join <genesis.json>", "join an existing network with its genesis file instead of creating one")
    .option("--validators <n>", "validators of a new network (the node's key is the first)", "1")
    .option("--stake <amount>", "bonded stake of each genesis validator", "100000")
    .option("--balance <amount>", "initial balance of each genesis validator", "1000000")
    .option("--alloc <address=amount>", "an initial allocation (repeatable)", collect, [])
    .option(
      "--model <dir>",
      "a new network's genesis model (config.json + safetensors): the genesis names its weights id, as " +
        "`deepshard model inspect` prints it, and this node's chunk store holds it",
    )
    .option("--data-dir <dir>", "data directory (default DEEPSHARD_DATA_DIR or ~/.deepshard)")
    .option("--roles <list>", "roles written to the config, comma-separated")
    .option("--listen <multiaddrs>", "libp2p listen addresses written to the config, comma-separated")
    .option("--bootstrap <multiaddrs>", "peers to dial at start written to the config, comma-separated")
    .option("--api-port <port>", "HTTP API port written to the config")
    .option("--force", "replace an existing network directory (its keys and database are deleted)")
    .option(
      "--passphrase-file <file>",
      "read the passphrase from a file (else DEEPSHARD_PASSPHRASE or a prompt)",
    )
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  DEEPSHARD_PASSPHRASE=secret deepshard init --chain-id mynet\n" +
        "  deepshard init --chain-id mynet --validators 4 --alloc ds1…=5000\n" +
        "  deepshard init --chain-id mynet --model ./genesis --roles validator,storage\n" +
        "  deepshard init --join ./genesis.json --bootstrap /ip4/10.0.0.2/tcp/26656/p2p/12D3KooW…",
    )
    .action(async (options: InitOptions) => {
      const result = await init(options);
      printResult(options, result, () =>
        [
          `${result.joined ? "joined" : "created"} network ${result.chainId} in ${result.dir}`,
          `address ${result.address}`,
          `peer id ${result.peerId}`,
          ...(result.validatorKeys.length > 0 ? [`validator keys: ${result.validatorKeys.join(", ")}`] : []),
          ...(result.weightsId === undefined
            ? []
            : [
                `genesis weights ${result.weightsId} (stored here; a node with the storage role serves them)`,
              ]),
          `start it with: deepshard node start${result.dataDirFlag}`,
        ].join("\n"),
      );
    });
}

function parseAlloc(text: string): { address: Uint8Array; balance: bigint } {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new DeepshardError("BAD_FLAG", "--alloc must be <address>=<amount>", { details: `got "${text}"` });
  }
  let address: Uint8Array;
  try {
    address = parseAddress(text.slice(0, eq));
  } catch (err) {
    throw new DeepshardError(
      "BAD_FLAG",
      `--alloc: ${isDeepshardError(err) ? err.shortMessage : String(err)}`,
      {
        details: `in "${text}"`,
      },
    );
  }
  return { address, balance: parseAmount(text.slice(eq + 1), "--alloc amount") };
}

/**
 * The model folder chunked as the network names it (`chunkModel`), after checking it is a model.
 * Loaded here, not at the top, so other commands start without loading the tensor package.
 */
async function genesisWeights(dir: string) {
  const { checkModelDir } = await import("../model/load.ts");
  const { loadConfig } = await import("@deepshard/tensor");
  await checkModelDir(dir);
  await loadConfig(dir);
  return chunkModel(dir);
}

async function init(options: InitOptions) {
  const dataDir = resolveDataDir(options.dataDir);
  let joined: Genesis | undefined;
  if (options.join) {
    joined = await loadGenesis(options.join);
    if (options.chainId && options.chainId !== joined.chainId) {
      throw new DeepshardError("BAD_FLAG", `--chain-id ${options.chainId} differs from the genesis`, {
        details: `${options.join} is the genesis of "${joined.chainId}"`,
      });
    }
  }
  const chainId = joined?.chainId ?? options.chainId;
  if (!chainId)
    throw new DeepshardError("BAD_FLAG", "pass --chain-id <id> for a new network, or --join <genesis.json>");
  // Validates the chain id and the flags the config takes, naming the bad one.
  const config = mergeConfig(defaultConfig(chainId), [
    {
      source: "flags",
      values: {
        chainId,
        roles: options.roles,
        listen: options.listen,
        bootstrap: options.bootstrap,
        apiPort: options.apiPort,
      },
    },
  ]);
  const count = Number(options.validators);
  if (!/^[0-9]+$/.test(options.validators) || count < 1 || count > MAX_INIT_VALIDATORS) {
    throw new DeepshardError(
      "BAD_FLAG",
      `--validators must be a whole number from 1 to ${MAX_INIT_VALIDATORS}`,
      {
        details: `got "${options.validators}"`,
      },
    );
  }
  if (joined && options.validators !== "1") {
    throw new DeepshardError("BAD_FLAG", "--validators applies to a new network, not with --join");
  }
  if (joined && options.model) {
    throw new DeepshardError("BAD_FLAG", "--model applies to a new network, not with --join", {
      details: "a network's genesis already names its model",
    });
  }
  const stake = parseAmount(options.stake, "--stake");
  const balance = parseAmount(options.balance, "--balance");
  const allocs = options.alloc.map(parseAlloc);

  // Chunked before anything is written, so a folder that is not a model leaves no half-made network.
  const model = options.model === undefined ? undefined : await genesisWeights(options.model);

  const paths = networkPaths(dataDir, chainId);
  if (await exists(paths.root)) {
    if (!options.force) {
      throw new DeepshardError(
        "NETWORK_EXISTS",
        `network ${chainId} is already initialised in ${paths.root}`,
        {
          details: "pass --force to replace it (its keys and database are deleted)",
        },
      );
    }
  }
  const passphrase = await resolvePassphrase(options, true);
  if (options.force) await rm(paths.root, { recursive: true, force: true });
  for (const dir of [paths.root, paths.keys, paths.blobs, paths.weights])
    await mkdir(dir, { recursive: true });

  const node = generateKeyPair();
  await writeKeystore(paths.nodeKey, node.secretKey, passphrase);
  const validatorKeys: string[] = [];
  let genesis = joined;
  if (!genesis) {
    const validators = [node.publicKey];
    for (let i = 2; i <= count; i++) {
      const pair = generateKeyPair();
      const file = join(paths.keys, `validator-${i}.key`);
      await writeKeystore(file, pair.secretKey, passphrase);
      validatorKeys.push(file);
      validators.push(pair.publicKey);
    }
    genesis = createGenesis({
      chainId,
      genesisTime: Date.now(),
      validators: validators.map((address) => ({ address, bonded: stake, balance })),
      accounts: allocs,
      ...(model ? { genesisWeightsId: Buffer.from(model.weightsId, "hex") } : {}),
    });
  }
  // As the devnet seeds its storage nodes: this node holds the only copy of the genesis weights.
  if (model) {
    const { ChunkStore } = await import("../../node/blobs/index.ts");
    await (await ChunkStore.open(paths.root)).putFrom(model);
  }
  await writeGenesis(paths.genesis, genesis);
  await writeConfigFile(paths.config, config);
  return {
    chainId,
    joined: joined !== undefined,
    dir: paths.root,
    dataDirFlag: options.dataDir ? ` --data-dir ${options.dataDir}` : "",
    address: encodeAddress(node.publicKey),
    peerId: peerIdFromSecret(node.secretKey).toString(),
    genesis: paths.genesis,
    config: paths.config,
    key: paths.nodeKey,
    validatorKeys,
    weightsId: model?.weightsId,
    validators: genesis.validators.map((v) => ({ address: encodeAddress(v.address), bonded: v.bonded })),
  };
}
