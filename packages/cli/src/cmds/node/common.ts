/**
 * What the commands that talk to a running node share: where its API is (`--api`, else
 * DEEPSHARD_API, else the running daemon's node.json, else the config's port) and which key signs
 * (`--key <file>`, else the node key of the network).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DeepshardError, parseKeystore, readKeystore } from "@deepshard/protocol";
import type { Command } from "commander";
import { DeepshardClient } from "../../node/client.ts";
import { apiUrlFor, loadConfig } from "../../node/config.ts";
import {
  listNetworks,
  networkPaths,
  RUNNING_FILE,
  type RunningNodeInfo,
  resolveChainId,
  resolveDataDir,
} from "../../node/datadir.ts";
import { resolvePassphrase } from "../../util/passphrase.ts";

export interface ApiOptions {
  api?: string;
  dataDir?: string;
  chainId?: string;
  json?: boolean;
}

export interface KeyOptions extends ApiOptions {
  key?: string;
  passphraseFile?: string;
}

export function addApiOptions(cmd: Command): Command {
  return cmd
    .option("--api <url>", "the node's API (default DEEPSHARD_API, else the local node of the network)")
    .option("--data-dir <dir>", "data directory (default DEEPSHARD_DATA_DIR or ~/.deepshard)")
    .option("--chain-id <id>", "which network of the data directory (when it holds several)")
    .option("--json", "print JSON");
}

export function addKeyOptions(cmd: Command): Command {
  return addApiOptions(cmd)
    .option("--key <file>", "sign with this key file (default: the node key of the network)")
    .option(
      "--passphrase-file <file>",
      "read the passphrase from a file (else DEEPSHARD_PASSPHRASE or a prompt)",
    );
}

export async function resolveApiUrl(
  options: ApiOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (options.api) return options.api;
  if (env.DEEPSHARD_API) return env.DEEPSHARD_API;
  const dataDir = resolveDataDir(options.dataDir, env);
  if (!options.chainId && !env.DEEPSHARD_CHAIN_ID && (await listNetworks(dataDir)).length === 0) {
    return apiUrlFor({ apiPort: Number(env.DEEPSHARD_API_PORT) || 26680 });
  }
  const chainId = await resolveChainId(dataDir, options.chainId, env);
  const paths = networkPaths(dataDir, chainId);
  try {
    const running = JSON.parse(await readFile(join(paths.root, RUNNING_FILE), "utf8")) as RunningNodeInfo;
    if (typeof running.api === "string") return running.api;
  } catch {
    // No daemon has announced itself: use the configured port.
  }
  return apiUrlFor(await loadConfig({ chainId, file: paths.config, env }));
}

export async function connect(options: ApiOptions): Promise<DeepshardClient> {
  return new DeepshardClient(await resolveApiUrl(options));
}

/** Runs `fn` with a client and closes it afterwards. */
export async function withClient<T>(
  options: ApiOptions,
  fn: (client: DeepshardClient) => Promise<T>,
): Promise<T> {
  const client = await connect(options);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

async function keyFile(options: KeyOptions): Promise<string> {
  if (options.key) return options.key;
  const dataDir = resolveDataDir(options.dataDir);
  return networkPaths(dataDir, await resolveChainId(dataDir, options.chainId)).nodeKey;
}

/** The address of the signing key, read without unlocking it. */
export async function keyAddress(options: KeyOptions): Promise<string> {
  const file = await keyFile(options);
  const text = await readFile(file, "utf8").catch((cause: unknown) => {
    throw new DeepshardError("READ_FAILED", `cannot read key file ${file}`, { cause });
  });
  return parseKeystore(text).address;
}

export async function signingKey(options: KeyOptions): Promise<Uint8Array> {
  const pair = await readKeystore(await keyFile(options), await resolvePassphrase(options));
  return pair.secretKey;
}
