import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeepshardError, encodeAddress, generateKeyPair, readKeystore } from "@deepshard/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeepshardClient } from "../src/node/client.ts";
import type { NodeConfig } from "../src/node/config.ts";
import { Daemon, type DaemonOptions } from "../src/node/daemon.ts";
import { networkPaths } from "../src/node/datadir.ts";
import { createLogger } from "../src/node/logger.ts";
import type { RoleService } from "../src/node/service.ts";
import { killChildren, makeNetwork, PASSPHRASE, type TestNetwork, until } from "./node-fixture.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");

interface Started {
  chainId: string;
  api: string;
  address: string;
  peerId: string;
  height: number;
}

interface Child {
  process: ChildProcess;
  /** The JSON line `node start --json` prints once it runs. */
  ready: Promise<Started>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const children: ChildProcess[] = [];

function startNode(net: TestNetwork, extra: string[] = []): Child {
  const { DEEPSHARD_PASSPHRASE: _p, ...env } = process.env;
  const child = spawn(
    process.execPath,
    [bin, "node", "start", "--data-dir", net.dataDir, "--json", ...extra],
    {
      env: { ...env, DEEPSHARD_PASSPHRASE: PASSPHRASE, DEEPSHARD_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(child);
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<Started>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve(JSON.parse(line));
    });
    exited.then(({ code }) => reject(new Error(`node exited with ${code} before it ran:\n${err}`)));
  });
  ready.catch(() => {});
  return { process: child, ready, exited, stderr: () => err };
}

let dir: string;
let net: TestNetwork;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-node-"));
  net = await makeNetwork(dir);
});

afterEach(() => killChildren(children));

afterAll(() => rm(dir, { recursive: true, force: true }));

async function heightOf(client: DeepshardClient): Promise<number> {
  return (await client.status()).height;
}

describe("deepshard node start", () => {
  it("refuses a second daemon on the same data directory, stops on SIGTERM with exit 0, and resumes at its height", async () => {
    const first = startNode(net);
    const info = await first.ready;
    expect(info).toMatchObject({ chainId: "test-net", address: net.nodeAddress });
    expect(existsSync(join(net.paths.root, "node.json"))).toBe(true);
    const client = new DeepshardClient(info.api);
    try {
      await until(async () => (await heightOf(client)) >= 3, 15_000);

      // Another daemon on the same directory fails at the database, before binding any port.
      const second = startNode(net);
      const refused = await second.exited;
      expect(refused.code).toBe(1);
      const lines = second.stderr().split("\n");
      expect(lines[0]).toMatch(/^error: the database at .*db is in use by another process\b/);
      expect(second.stderr()).not.toMatch(/\bat .*\.ts:\d+/);
      expect(second.stderr()).not.toMatch(/Caused by/);
      expect(await heightOf(client)).toBeGreaterThanOrEqual(3);

      const before = await heightOf(client);
      const t0 = Date.now();
      first.process.kill("SIGTERM");
      const stopped = await first.exited;
      expect(stopped).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(first.stderr()).toMatch(/INFO {2}node: stopped/);
      expect(existsSync(join(net.paths.root, "node.json"))).toBe(false);

      // The restart replays the store and continues from where it stopped.
      const again = startNode(net);
      const resumed = await again.ready;
      expect(resumed.height).toBeGreaterThanOrEqual(before);
      const client2 = new DeepshardClient(resumed.api);
      try {
        await until(async () => (await heightOf(client2)) > resumed.height, 10_000);
        const block = await client2.block(before);
        expect(block.height).toBe(before);
      } finally {
        await client2.close();
      }
      again.process.kill("SIGINT");
      expect((await again.exited).code).toBe(0);
    } finally {
      await client.close();
    }
  });

  it("says which setting is wrong and exits 1 without starting", async () => {
    const bad = startNode(net, ["--roles", "validator,banker"]);
    expect((await bad.exited).code).toBe(1);
    expect(bad.stderr().split("\n")[0]).toMatch(
      /^error: config: roles must be a list of roles \(validator, informant, trainer, storage, inference\)/,
    );
    expect(bad.stderr()).toMatch(/got "validator,banker" from flag --roles/);

    const wrongKey = spawn(process.execPath, [bin, "node", "start", "--data-dir", net.dataDir], {
      env: { ...process.env, DEEPSHARD_PASSPHRASE: "not it" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(wrongKey);
    let err = "";
    wrongKey.stderr!.on("data", (d) => {
      err += d.toString();
    });
    const code = await new Promise((r) => wrongKey.once("exit", r));
    expect(code).toBe(1);
    expect(err).toMatch(/^error: wrong passphrase/);
  });
});

describe("the daemon in process", () => {
  const running: Daemon[] = [];
  afterEach(async () => {
    for (const d of running.splice(0)) await d.stop(2_000);
  });

  async function start(
    network: TestNetwork,
    extra: Partial<DaemonOptions> = {},
    config: Partial<NodeConfig> = {},
  ) {
    const daemon = await Daemon.start({
      paths: network.paths,
      config: { ...network.config, ...config },
      secretKey: network.node.secretKey,
      logger: createLogger("silent"),
      ...extra,
    });
    running.push(daemon);
    return daemon;
  }

  it("joins a network: a second node bootstraps to the first, follows its chain, and relays transactions", async () => {
    const first = await start(await makeNetwork(join(dir, "net-1")));
    await until(() => first.height >= 2);
    // The joiner: the same genesis, its own key, the first node as bootstrap peer.
    const joinerDir = join(dir, "net-2");
    const paths = networkPaths(joinerDir, first.config.chainId);
    await mkdir(paths.keys, { recursive: true });
    await copyFile(first.paths.genesis, paths.genesis);
    const key = generateKeyPair();
    const joiner = await start(
      { ...net, dataDir: joinerDir, paths, node: key },
      {},
      { bootstrap: first.ledger.host.addresses().map(String), roles: ["storage"] },
    );
    await until(() => joiner.ledger.host.peers().length > 0 && joiner.height >= first.height - 1, 15_000);

    const viaJoiner = new DeepshardClient(joiner.apiUrl);
    const viaFirst = new DeepshardClient(first.apiUrl);
    try {
      expect((await viaJoiner.status()).peers).toBe(1);
      const firstNet = first.paths.root;
      const user = await readKeystore(join(firstNet, "keys", "user.key"), PASSPHRASE);
      const sent = await viaJoiner.transfer(user.secretKey, encodeAddress(key.publicKey), 7n);
      const included = await viaFirst.waitForTx(sent.hash, 15_000);
      expect(included.ok).toBe(true);
      await until(async () => (await viaJoiner.account(encodeAddress(key.publicKey))).balance === 7n, 10_000);
      expect((await viaJoiner.block(included.height)).hash).toBe(
        (await viaFirst.block(included.height)).hash,
      );
    } finally {
      await viaJoiner.close();
      await viaFirst.close();
    }
  });

  it("undoes a start whose role fails, and stops past a hung role within the deadline, closing the database", async () => {
    const network = await makeNetwork(join(dir, "net-3"));
    const failing: RoleService = {
      name: "storage",
      start: async () => {
        throw new DeepshardError("ROLE_FAILED", "the disk is full");
      },
      stop: async () => {},
    };
    await expect(
      Daemon.start({
        paths: network.paths,
        config: { ...network.config, roles: ["validator", "storage"] },
        secretKey: network.node.secretKey,
        logger: createLogger("silent"),
        roles: { storage: () => failing },
      }),
    ).rejects.toMatchObject({ code: "ROLE_FAILED" });

    // The failed start released everything: the same directory starts again.
    const hung: RoleService = { name: "trainer", start: async () => {}, stop: () => new Promise(() => {}) };
    const daemon = await Daemon.start({
      paths: network.paths,
      config: { ...network.config, roles: ["trainer"] },
      secretKey: network.node.secretKey,
      logger: createLogger("silent"),
      roles: { trainer: () => hung },
    });
    const t0 = Date.now();
    expect(await daemon.stop(300)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(3_000);
    // The ledger was stopped anyway: its database opens again.
    running.push(await start(network));
  });
});
