import type { ChildProcess } from "node:child_process";
/**
 * A one-validator network directory for tests, written as `deepshard init` would but with a cheap
 * key-file KDF (the real one costs about a second per key) and a short block interval.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createGenesis, writeGenesis } from "@deepshard/ledger";
import { encodeAddress, generateKeyPair, type KeyPair, writeKeystore } from "@deepshard/protocol";
import { defaultConfig, type NodeConfig, writeConfigFile } from "../src/node/config.ts";
import { type NetworkPaths, networkPaths } from "../src/node/datadir.ts";

export const PASSPHRASE = "test passphrase";
export const FAST_KDF = { n: 2 ** 4, r: 8, p: 1 };
export const NODE_BALANCE = 1_000_000n;
export const USER_BALANCE = 5_000n;

/**
 * A node's settings for tests: loopback on free ports, blocks every 100 ms, warnings only, a 5 s stop
 * deadline; `overrides` (roles, bootstrap, log level) on top.
 */
export function testNodeConfig(chainId: string, overrides: Partial<NodeConfig> = {}): NodeConfig {
  return {
    ...defaultConfig(chainId),
    listen: ["/ip4/127.0.0.1/tcp/0"],
    apiPort: 0,
    blockIntervalMs: 100,
    logLevel: "warn",
    stopTimeoutMs: 5_000,
    ...overrides,
  };
}

export interface TestNetwork {
  dataDir: string;
  paths: NetworkPaths;
  config: NodeConfig;
  node: KeyPair;
  /** An account with a balance, for sending transactions. */
  user: KeyPair;
  userAddress: string;
  nodeAddress: string;
}

export async function makeNetwork(dataDir: string, chainId = "test-net"): Promise<TestNetwork> {
  const paths = networkPaths(dataDir, chainId);
  for (const dir of [paths.root, paths.keys, paths.blobs, paths.weights])
    await mkdir(dir, { recursive: true });
  const node = generateKeyPair();
  const user = generateKeyPair();
  await writeKeystore(paths.nodeKey, node.secretKey, PASSPHRASE, { kdf: FAST_KDF });
  await writeKeystore(join(paths.keys, "user.key"), user.secretKey, PASSPHRASE, { kdf: FAST_KDF });
  const genesis = createGenesis({
    chainId,
    genesisTime: Date.now(),
    validators: [{ address: node.publicKey, bonded: 100_000n, balance: NODE_BALANCE }],
    accounts: [{ address: user.publicKey, balance: USER_BALANCE }],
  });
  await writeGenesis(paths.genesis, genesis);
  const config = testNodeConfig(chainId);
  await writeConfigFile(paths.config, config);
  return {
    dataDir,
    paths,
    config,
    node,
    user,
    userAddress: encodeAddress(user.publicKey),
    nodeAddress: encodeAddress(node.publicKey),
  };
}

/** Polls `check` until it is true; fails after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether a process with this pid still exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs every child still running and waits for it to exit (for afterEach). */
export async function killChildren(children: ChildProcess[]): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
  }
}
