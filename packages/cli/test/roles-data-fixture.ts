/**
 * Data-loop networks for the informant and data-validator tests: a genesis with short voting
 * windows (blocks every 100 ms, so a window closes within a second or two), nodes with their own
 * data directories on 127.0.0.1, and texts to submit.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createGenesis, genesisToString, type ParamsOverrides } from "@deepshard/ledger";
import { generateKeyPair, type KeyPair } from "@deepshard/protocol";
import type { Role } from "../src/node/config.ts";
import { Daemon } from "../src/node/daemon.ts";
import { type NetworkPaths, networkPaths } from "../src/node/datadir.ts";
import type { NodeEvent } from "../src/node/events.ts";
import { createLogger } from "../src/node/logger.ts";
import { type DataValidatorOptions, DataValidatorService } from "../src/node/roles/data-validator/index.ts";
import { type InformantOptions, InformantService } from "../src/node/roles/informant/index.ts";
import { testNodeConfig } from "./node-fixture.ts";

export const CHAIN_ID = "data-net";
export const VALIDATOR_BOND = 100_000n;
export const START_BALANCE = 1_000_000n;
export const REWARD_AT_FULL_VALUE = 1_000n;

export interface NodeSpec {
  key: KeyPair;
  /** Bonded at genesis: a validator of the network. */
  validator: boolean;
}

export interface DataNetwork {
  dir: string;
  nodes: NodeSpec[];
  pathsOf(i: number): NetworkPaths;
}

/** Writes a genesis holding every node (validators bonded, everyone with START_BALANCE). */
export async function makeDataNetwork(
  dir: string,
  validators: boolean[],
  params: ParamsOverrides = {},
): Promise<DataNetwork> {
  const nodes = validators.map((validator) => ({ key: generateKeyPair(), validator }));
  const genesis = createGenesis({
    chainId: CHAIN_ID,
    genesisTime: Date.now(),
    validators: nodes
      .filter((n) => n.validator)
      .map((n) => ({ address: n.key.publicKey, bonded: VALIDATOR_BOND, balance: START_BALANCE })),
    accounts: nodes
      .filter((n) => !n.validator)
      .map((n) => ({ address: n.key.publicKey, balance: START_BALANCE })),
    params: {
      ...params,
      data: { votingWindow: 8, minStake: 10n, rewardAtFullValue: REWARD_AT_FULL_VALUE, ...params.data },
    },
  });
  const pathsOf = (i: number) => networkPaths(join(dir, `node-${i}`), CHAIN_ID);
  for (let i = 0; i < nodes.length; i++) {
    const paths = pathsOf(i);
    await mkdir(paths.keys, { recursive: true });
    await writeFile(paths.genesis, genesisToString(genesis));
  }
  return { dir, nodes, pathsOf };
}

export interface StartOptions {
  roles: Role[];
  bootstrap?: string[];
  informant?: InformantOptions;
  validator?: DataValidatorOptions;
}

export interface RunningNode {
  daemon: Daemon;
  /** Every event the node emitted since it started. */
  events: NodeEvent[];
}

export async function startDataNode(
  net: DataNetwork,
  i: number,
  options: StartOptions,
): Promise<RunningNode> {
  const config = testNodeConfig(CHAIN_ID, {
    roles: options.roles,
    bootstrap: options.bootstrap ?? [],
    logLevel: "silent",
  });
  const daemon = await Daemon.start({
    paths: net.pathsOf(i),
    config,
    secretKey: net.nodes[i]!.key.secretKey,
    logger: createLogger((process.env.TEST_LOG_LEVEL as "debug" | undefined) ?? "silent"),
    roles: {
      informant: () => new InformantService(options.informant),
      validator: () => new DataValidatorService(options.validator),
    },
  });
  const events: NodeEvent[] = [];
  daemon.events.subscribe((e) => events.push(e.event));
  return { daemon, events };
}

/** Polls `check` until it is true; fails after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Plain, factual paragraphs: novel to an empty corpus, calm in tone. */
export const GOOD_TEXT = [
  "The river delta formed over several thousand years as sediment carried from the highlands settled where the current slowed near the coast.",
  "Surveys made in the spring record the depth of each channel, the speed of the water and the share of sand and clay in the banks.",
  "Farmers in the region plant rice on the lower terraces and keep orchards on the higher ground that the seasonal floods do not reach.",
  "A railway line built in the last century links the port to the inland towns and carries grain, timber and passengers every day.",
].join("\n\n");

/** Other plain paragraphs, for a second good submission. */
export const OTHER_GOOD_TEXT = [
  "Glaciers in the northern valley retreat by a few metres each summer, and the meltwater feeds two lakes that did not exist a century ago.",
  "Researchers place stakes in the ice and measure how far each one moves between visits, which gives the speed of the flow at many points.",
  "The lakes hold cold, clear water with little life in it, although algae appear along the shallow edges late in the season.",
].join("\n\n");
