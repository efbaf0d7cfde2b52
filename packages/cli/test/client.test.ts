import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientError, DeepshardClient } from "../src/index.ts";
import { Daemon } from "../src/node/daemon.ts";
import { createLogger } from "../src/node/logger.ts";
import { makeNetwork, PASSPHRASE, type TestNetwork, USER_BALANCE, until } from "./node-fixture.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const exec = promisify(execFile);

let dir: string;
let net: TestNetwork;
let daemon: Daemon;
let client: DeepshardClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-client-"));
  net = await makeNetwork(dir);
  daemon = await Daemon.start({
    paths: net.paths,
    config: net.config,
    secretKey: net.node.secretKey,
    logger: createLogger("silent"),
  });
  client = new DeepshardClient(daemon.apiUrl);
  await until(() => daemon.height >= 1);
});

afterAll(async () => {
  await client?.close();
  await daemon?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI against the daemon (found through the network's node.json). */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { DEEPSHARD_API: _a, ...env } = process.env;
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args, "--data-dir", dir], {
      env: { ...env, DEEPSHARD_PASSPHRASE: PASSPHRASE },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function json(args: string[]) {
  const r = await cli([...args, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe("the ledger and validator commands", () => {
  it("read balances, blocks, transactions and the supply, and send transfers and bonds", async () => {
    expect(await json(["ledger", "balance", net.userAddress])).toMatchObject({
      address: net.userAddress,
      balance: String(USER_BALANCE),
      nonce: "0",
    });

    const userKey = join(net.paths.keys, "user.key");
    const sent = await json(["ledger", "transfer", net.nodeAddress, "25", "--key", userKey, "--wait"]);
    expect(sent).toMatchObject({ code: 0 });
    expect(sent.height).toBeGreaterThan(0);

    const tx = await json(["ledger", "tx", sent.hash]);
    expect(tx).toMatchObject({ status: "committed", height: sent.height, ok: true, sender: net.userAddress });
    expect(tx.to).toBe(net.nodeAddress);
    expect(tx.amount).toBe("25");

    const block = await cli(["ledger", "block", String(sent.height)]);
    expect(block.stdout).toMatch(new RegExp(`^block ${sent.height} `));
    expect(block.stdout).toContain(`${sent.hash}  transfer from ${net.userAddress}  ok`);

    const supply = await json(["ledger", "supply"]);
    expect(supply.holds).toBe(true);

    const bonded = await json(["validator", "bond", "10", "--wait"]);
    expect(bonded.code).toBe(0);
    const status = await json(["validator", "status"]);
    expect(status).toMatchObject({
      address: net.nodeAddress,
      bonded: "100010",
      active: true,
      shareBps: 10000,
    });

    const node = await json(["node", "status"]);
    expect(node.height).toBeGreaterThanOrEqual(sent.height);
  });

  it("print one error line for bad input, refusals and an unreachable node", async () => {
    const bad = await cli(["ledger", "balance", "ds1notanaddress"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.split("\n")[0]).toMatch(/^error: (address checksum|not a Deepshard address)/);

    const poor = await cli([
      "ledger",
      "transfer",
      net.nodeAddress,
      "999999999",
      "--key",
      join(net.paths.keys, "user.key"),
    ]);
    expect(poor.code).toBe(1);
    expect(poor.stderr.split("\n")[0]).toMatch(/^error: .*(balance|funds|cannot pay)/i);

    const away = await cli(["ledger", "supply", "--api", "http://127.0.0.1:1"]);
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(/^error: cannot reach the node at http:\/\/127\.0\.0\.1:1\b[^\n]*\n$/);
    expect(away.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });
});

describe("DeepshardClient", () => {
  it("sends several transactions in a row, each with the next nonce counting pooled ones", async () => {
    const start = (await client.account(net.userAddress)).nonce;
    const hashes: string[] = [];
    for (let i = 0; i < 3; i++)
      hashes.push((await client.transfer(net.user.secretKey, net.nodeAddress, 1n)).hash);
    const done = await Promise.all(hashes.map((h) => client.waitForTx(h, 15_000)));
    expect(done.map((d) => d.ok)).toEqual([true, true, true]);
    expect((await client.account(net.userAddress)).nonce).toBe(start + 3n);
  });

  it("reports refusals with the node's code and status, and unreachable nodes and bad URLs clearly", async () => {
    const refused = await client.account("nope").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ClientError);
    expect(refused).toMatchObject({ status: 400, code: "INVALID_ADDRESS" });

    const missing = await client.tx("ab".repeat(32)).catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404, code: "TX_NOT_FOUND" });
    await expect(client.waitForTx("cd".repeat(32), 300)).rejects.toMatchObject({ code: "TX_TIMEOUT" });

    const away = new DeepshardClient("http://127.0.0.1:1");
    await expect(away.status()).rejects.toMatchObject({ status: 0, code: "NODE_UNREACHABLE" });
    await away.close();
    expect(() => new DeepshardClient("not a url")).toThrow(/not a URL/);
    expect(() => new DeepshardClient("ftp://127.0.0.1")).toThrow(/the node API is http/);
  });
});
