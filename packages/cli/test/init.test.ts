import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGenesis } from "@deepshard/ledger";
import { DeepshardError, encodeAddress, generateKeyPair, parseKeystore } from "@deepshard/protocol";
import { afterAll, describe, expect, it } from "vitest";
import { buildProgram } from "../src/main.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const dir = mkdtempSync(join(tmpdir(), "deepshard-init-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = { DEEPSHARD_PASSPHRASE: "pw" }) {
  const { DEEPSHARD_PASSPHRASE: _p, DEEPSHARD_DATA_DIR: _d, DEEPSHARD_CHAIN_ID: _c, ...base } = process.env;
  return spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...base, ...env } });
}

/** One `error: …` line first, and no stack trace anywhere. */
function expectUserError(result: ReturnType<typeof run>, message: RegExp) {
  expect(result.status, result.stdout).toBe(1);
  expect(result.stderr.split("\n")[0]).toMatch(message);
  expect(result.stderr).toMatch(/^error: [^\n]*\n$/);
  expect(result.stderr).not.toMatch(/\bat .*\.ts:\d+/);
}

describe("deepshard init", () => {
  const data = join(dir, "data");
  const alloc = encodeAddress(generateKeyPair().publicKey);

  it("writes the key, the config and a new network's genesis with the node as first validator", async () => {
    const made = run([
      "init",
      "--chain-id",
      "alpha",
      "--data-dir",
      data,
      "--validators",
      "2",
      "--stake",
      "5000",
      "--balance",
      "70_000",
      "--alloc",
      `${alloc}=777`,
      "--roles",
      "storage,validator",
      "--api-port",
      "0",
      "--json",
    ]);
    expect(made.status, made.stderr).toBe(0);
    const out = JSON.parse(made.stdout);
    const root = join(data, "alpha");
    expect(out.dir).toBe(root);
    for (const d of ["blobs", "weights", "keys"]) expect(statSync(join(root, d)).isDirectory()).toBe(true);
    expect(parseKeystore(readFileSync(join(root, "keys", "node.key"), "utf8")).address).toBe(out.address);
    expect(out.validatorKeys).toEqual([join(root, "keys", "validator-2.key")]);
    const second = parseKeystore(readFileSync(out.validatorKeys[0], "utf8")).address;

    const genesis = await loadGenesis(join(root, "genesis.json"));
    expect(genesis.chainId).toBe("alpha");
    expect(genesis.validators.map((v) => [encodeAddress(v.address), v.bonded])).toEqual([
      [out.address, 5000n],
      [second, 5000n],
    ]);
    const balances = new Map(genesis.accounts.map((a) => [encodeAddress(a.address), a.balance]));
    expect(balances.get(out.address)).toBe(70_000n);
    expect(balances.get(second)).toBe(70_000n);
    expect(balances.get(alloc)).toBe(777n);

    const config = JSON.parse(readFileSync(join(root, "config.json"), "utf8"));
    expect(config).toMatchObject({ chainId: "alpha", roles: ["validator", "storage"], apiPort: 0 });
  });

  it("refuses to overwrite an existing network without --force, and replaces it with --force", () => {
    const again = run(["init", "--chain-id", "alpha", "--data-dir", data]);
    expectUserError(again, /^error: network alpha is already initialised in .*alpha \(/);
    expect(again.stderr).toMatch(/pass --force/);
    const before = parseKeystore(readFileSync(join(data, "alpha", "keys", "node.key"), "utf8")).address;

    const forced = run(["init", "--chain-id", "alpha", "--data-dir", data, "--force", "--json"]);
    expect(forced.status, forced.stderr).toBe(0);
    const after = JSON.parse(forced.stdout);
    expect(after.address).not.toBe(before);
    expect(existsSync(join(data, "alpha", "keys", "validator-2.key"))).toBe(false);
  });

  it("joins an existing network from its genesis file", async () => {
    const other = join(dir, "joiner");
    const source = join(data, "alpha", "genesis.json");
    const joined = run(["init", "--join", source, "--data-dir", other, "--json"]);
    expect(joined.status, joined.stderr).toBe(0);
    const out = JSON.parse(joined.stdout);
    expect(out).toMatchObject({ chainId: "alpha", joined: true });
    expect(await loadGenesis(join(other, "alpha", "genesis.json"))).toEqual(await loadGenesis(source));
    // The joining node has its own key, which is not a genesis validator.
    expect(out.validators.map((v: { address: string }) => v.address)).not.toContain(out.address);

    expectUserError(
      run(["init", "--join", source, "--chain-id", "beta", "--data-dir", join(dir, "j2")]),
      /--chain-id beta differs from the genesis/,
    );
    expectUserError(
      run(["init", "--join", join(dir, "missing.json"), "--data-dir", join(dir, "j3")]),
      /cannot read the genesis file/,
    );
  });

  it("rejects bad flags with a clear error naming the flag, and creates nothing", async () => {
    const fresh = join(dir, "fresh");
    const cases: [string[], RegExp][] = [
      [[], /pass --chain-id <id> for a new network, or --join/],
      [["--chain-id", "Bad Id"], /config: chainId must be 1–64 of a-z 0-9/],
      [["--chain-id", "n1", "--validators", "0"], /--validators must be a whole number from 1 to 100/],
      [["--chain-id", "n1", "--validators", "x"], /--validators must be a whole number/],
      [["--chain-id", "n1", "--stake", "-3"], /--stake must be a whole number of tokens/],
      [["--chain-id", "n1", "--alloc", "nobody"], /--alloc must be <address>=<amount>/],
      [["--chain-id", "n1", "--alloc", "ds1qqqq=5"], /--alloc: /],
      [["--chain-id", "n1", "--alloc", `${alloc}=lots`], /--alloc amount must be a whole number/],
      [["--chain-id", "n1", "--api-port", "70000"], /config: apiPort must be an integer in \[0, 65535\]/],
      [["--chain-id", "n1", "--roles", "miner"], /config: roles must be a list of roles/],
      [["--chain-id", "n1"], /a passphrase is needed to lock or unlock the key file/],
    ];
    const saved = process.env.DEEPSHARD_PASSPHRASE;
    delete process.env.DEEPSHARD_PASSPHRASE;
    try {
      for (const [args, message] of cases) {
        const program = buildProgram();
        const err = await program
          .parseAsync(["node", "deepshard", "init", "--data-dir", fresh, ...args])
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err, args.join(" ")).toBeInstanceOf(DeepshardError);
        expect((err as DeepshardError).shortMessage).toMatch(message);
      }
    } finally {
      if (saved !== undefined) process.env.DEEPSHARD_PASSPHRASE = saved;
    }
    expect(existsSync(fresh)).toBe(false);
  });
});
