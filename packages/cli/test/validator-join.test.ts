/**
 * A node that joins a running network and bonds while running: once its stake is needed for the
 * 2/3 quorum, the chain must go on finalizing with its votes, without restarting anything.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGenesis, writeGenesis } from "@deepshard/ledger";
import { encodeAddress, generateKeyPair, type KeyPair } from "@deepshard/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeepshardClient } from "../src/node/client.ts";
import { Daemon } from "../src/node/daemon.ts";
import { type NetworkPaths, networkPaths } from "../src/node/datadir.ts";
import { createLogger } from "../src/node/logger.ts";
import { testNodeConfig, until } from "./node-fixture.ts";

const CHAIN = "join-bond-net";
const GENESIS_BOND = 100_000n;
/** As in the README's walk-through: the genesis validator then holds exactly 2/3, not more than 2/3. */
const JOINER_BOND = 50_000n;

let dir: string;
const running: Daemon[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-join-bond-"));
});
afterEach(async () => {
  for (const d of running.splice(0).reverse()) await d.stop(2_000);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function networkDir(name: string): Promise<NetworkPaths> {
  const paths = networkPaths(join(dir, name), CHAIN);
  for (const d of [paths.root, paths.keys, paths.blobs, paths.weights]) await mkdir(d, { recursive: true });
  return paths;
}

async function start(paths: NetworkPaths, key: KeyPair, bootstrap: string[] = []): Promise<Daemon> {
  // Consensus only: the role services play no part in signing votes.
  const config = testNodeConfig(CHAIN, { roles: [], bootstrap });
  const daemon = await Daemon.start({
    paths,
    config,
    secretKey: key.secretKey,
    logger: createLogger("silent"),
  });
  running.push(daemon);
  return daemon;
}

describe("a joined node that bonds while running", () => {
  it("votes as soon as its bond takes effect, and the chain keeps finalizing", async () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const genesis = createGenesis({
      chainId: CHAIN,
      genesisTime: Date.now(),
      validators: [{ address: a.publicKey, bonded: GENESIS_BOND, balance: 1_000n }],
      accounts: [{ address: b.publicKey, balance: 200_000n }],
    });
    const pathsA = await networkDir("a");
    const pathsB = await networkDir("b");
    await writeGenesis(pathsA.genesis, genesis);
    await writeGenesis(pathsB.genesis, genesis);

    const nodeA = await start(pathsA, a);
    await until(() => nodeA.height >= 2);
    const nodeB = await start(pathsB, b, nodeA.ledger.host.addresses().map(String));
    await until(() => nodeB.height >= nodeA.height - 1 && nodeB.ledger.host.peers().length > 0, 15_000);

    const client = new DeepshardClient(nodeB.apiUrl);
    try {
      const bonded = await client.bond(b.secretKey, JOINER_BOND, { wait: true, timeoutMs: 15_000 });
      const set = await client.validators();
      expect(set.validators.map((v) => v.address)).toContain(encodeAddress(b.publicKey));
      // Past the bond's effect, every quorum needs B's votes: the chain moves only if B signs.
      const target = bonded.height! + 6;
      await until(() => nodeA.height >= target && nodeB.height >= target, 20_000);
      const later = await nodeA.ledger.block(target);
      const signers = later!.block.lastCommit!.signatures.map((s) => encodeAddress(s.validator));
      expect(signers).toContain(encodeAddress(b.publicKey));
    } finally {
      await client.close();
    }
  }, 60_000);
});
