/**
 * Where a node keeps its files: one directory per network under the data directory,
 *
 *   <dataDir>/<chainId>/{config.json, genesis.json, keys/node.key, db/, blobs/, weights/}
 *
 * so that one machine can run nodes of several networks side by side.
 */
import { readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { DeepshardError } from "@deepshard/protocol";

export interface NetworkPaths {
  /** `<dataDir>/<chainId>` */
  root: string;
  config: string;
  genesis: string;
  keys: string;
  nodeKey: string;
  /** The ledger's LevelDB. */
  db: string;
  blobs: string;
  weights: string;
}

/** What `node.json` in the network directory says about a running daemon (for clients and devnets). */
export interface RunningNodeInfo {
  pid: number;
  api: string;
  peerId: string;
  address: string;
  listen: string[];
}

/** Written by a running daemon into its network directory, removed when it stops. */
export const RUNNING_FILE = "node.json";

/** `--data-dir`, else `DEEPSHARD_DATA_DIR`, else `~/.deepshard`. */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const dir = flag ?? env.DEEPSHARD_DATA_DIR;
  return resolve(dir && dir.length > 0 ? dir : join(homedir(), ".deepshard"));
}

export function networkPaths(dataDir: string, chainId: string): NetworkPaths {
  const root = join(dataDir, chainId);
  return {
    root,
    config: join(root, "config.json"),
    genesis: join(root, "genesis.json"),
    keys: join(root, "keys"),
    nodeKey: join(root, "keys", "node.key"),
    db: join(root, "db"),
    blobs: join(root, "blobs"),
    weights: join(root, "weights"),
  };
}

/** Chain ids of the networks initialised under `dataDir` (directories holding a genesis.json). */
export async function listNetworks(dataDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const name of names.sort()) {
    if (await exists(networkPaths(dataDir, name).genesis)) found.push(name);
  }
  return found;
}

/**
 * The network a command works on: the one named (flag or DEEPSHARD_CHAIN_ID), else the only one
 * initialised in the data directory.
 */
export async function resolveChainId(
  dataDir: string,
  named?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const chainId = named ?? env.DEEPSHARD_CHAIN_ID;
  if (chainId) {
    if (!(await exists(networkPaths(dataDir, chainId).genesis))) {
      throw new DeepshardError("NETWORK_NOT_FOUND", `no network "${chainId}" in ${dataDir}`, {
        details: `run \`deepshard init --chain-id ${chainId}\` first, or pass --data-dir`,
        meta: { dataDir, chainId },
      });
    }
    return chainId;
  }
  const networks = await listNetworks(dataDir);
  if (networks.length === 1) return networks[0]!;
  if (networks.length === 0) {
    throw new DeepshardError("NETWORK_NOT_FOUND", `no network is initialised in ${dataDir}`, {
      details: "run `deepshard init --chain-id <id>` first, or pass --data-dir",
      meta: { dataDir },
    });
  }
  throw new DeepshardError("CHAIN_ID_REQUIRED", `${dataDir} holds several networks; pass --chain-id`, {
    details: `one of: ${networks.join(", ")}`,
    meta: { dataDir, networks },
  });
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
