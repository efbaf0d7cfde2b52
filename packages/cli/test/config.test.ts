import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULT_API_PORT,
  defaultConfig,
  envLayer,
  loadConfig,
  mergeConfig,
  writeConfigFile,
} from "../src/node/config.ts";
import { networkPaths, resolveChainId, resolveDataDir } from "../src/node/datadir.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-config-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

async function thrownAsync(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("node config", () => {
  it("merges defaults < config file < environment < flags, field by field", async () => {
    const file = join(dir, "merge.json");
    await writeFile(
      file,
      JSON.stringify({
        chainId: "net-a",
        apiPort: 1111,
        roles: ["storage"],
        logLevel: "debug",
        blockIntervalMs: 500,
      }),
    );
    const config = await loadConfig({
      chainId: "net-a",
      file,
      env: { DEEPSHARD_API_PORT: "2222", DEEPSHARD_ROLES: "trainer, validator", DEEPSHARD_LOG_LEVEL: "warn" },
      flags: { apiPort: "3333", roles: undefined },
    });
    expect(config.apiPort).toBe(3333); // flag over env over file
    expect(config.roles).toEqual(["validator", "trainer"]); // env over file, in canonical order
    expect(config.logLevel).toBe("warn"); // env over file
    expect(config.blockIntervalMs).toBe(500); // file over default
    expect(config.stopTimeoutMs).toBe(defaultConfig("net-a").stopTimeoutMs); // default
  });

  it("uses the defaults when there is no config file, and writes a file that reads back the same", async () => {
    const missing = await loadConfig({ chainId: "net-b", file: join(dir, "none.json"), env: {} });
    expect(missing).toEqual(defaultConfig("net-b"));
    expect(missing.apiPort).toBe(DEFAULT_API_PORT);
    const file = join(dir, "written.json");
    const config = {
      ...defaultConfig("net-b"),
      roles: ["validator" as const, "storage" as const],
      apiPort: 0,
    };
    await writeConfigFile(file, config);
    expect(await loadConfig({ chainId: "net-b", file, env: {} })).toEqual(config);
  });

  it("names the bad field, what it must be, the value and where it came from", () => {
    const base = defaultConfig("net-c");
    const port = thrown(() => mergeConfig(base, [envLayer({ DEEPSHARD_API_PORT: "http" })]));
    expect(port.code).toBe("CONFIG_INVALID");
    expect(port.shortMessage).toBe("config: apiPort must be an integer in [0, 65535]");
    expect(port.details).toBe('got "http" from environment (DEEPSHARD_API_PORT)');

    const role = thrown(() => mergeConfig(base, [{ source: "flags", values: { roles: "validator,miner" } }]));
    expect(role.shortMessage).toMatch(/^config: roles must be a list of roles \(validator, informant/);
    expect(role.details).toBe('got "validator,miner" from flag --roles');

    const interval = thrown(() =>
      mergeConfig(base, [{ source: "flags", values: { blockIntervalMs: "-5" } }]),
    );
    expect(interval.details).toBe('got "-5" from flag --block-interval-ms');

    const boot = thrown(() =>
      mergeConfig(base, [{ source: "config file x.json", values: { bootstrap: ["/ip4/1.2.3.4/tcp/1"] } }]),
    );
    expect(boot.shortMessage).toMatch(/bootstrap must be a list of multiaddrs ending in \/p2p/);
    expect(boot.details).toMatch(/from config file x\.json$/);

    const unknown = thrown(() =>
      mergeConfig(base, [{ source: "config file x.json", values: { apiPrt: 1 } }]),
    );
    expect(unknown.shortMessage).toBe('unknown config field "apiPrt"');
    expect(unknown.details).toMatch(/in config file x\.json; known fields: chainId, roles/);

    const level = thrown(() =>
      mergeConfig(base, [{ source: "config file x.json", values: { logLevel: 3 } }]),
    );
    expect(level.shortMessage).toBe("config: logLevel must be one of debug, info, warn, error, silent");
  });

  it("refuses a config file that is not a JSON object or belongs to another network", async () => {
    const broken = join(dir, "broken.json");
    await writeFile(broken, "{ apiPort: 1 ");
    const bad = await thrownAsync(loadConfig({ chainId: "net-d", file: broken, env: {} }));
    expect(bad.shortMessage).toBe(`the config file ${broken} is not valid JSON`);

    const list = join(dir, "list.json");
    await writeFile(list, "[1, 2]");
    expect((await thrownAsync(loadConfig({ chainId: "net-d", file: list, env: {} }))).shortMessage).toMatch(
      /must hold a JSON object/,
    );

    const other = join(dir, "other.json");
    await writeFile(other, JSON.stringify({ chainId: "net-e" }));
    const mismatch = await thrownAsync(loadConfig({ chainId: "net-d", file: other, env: {} }));
    expect(mismatch.shortMessage).toMatch(/chainId is "net-e"/);
    expect(mismatch.details).toMatch(/network "net-d"/);
  });

  it("finds the data directory and the network in it", async () => {
    expect(resolveDataDir("/x/y", {})).toBe("/x/y");
    expect(resolveDataDir(undefined, { DEEPSHARD_DATA_DIR: "/from/env" })).toBe("/from/env");
    expect(resolveDataDir(undefined, {})).toMatch(/\.deepshard$/);

    const data = join(dir, "data");
    await expect(resolveChainId(data, undefined, {})).rejects.toThrow(/no network is initialised/);
    const paths = networkPaths(data, "only-net");
    await mkdir(paths.root, { recursive: true });
    await writeFile(paths.genesis, "{}");
    expect(await resolveChainId(data, undefined, {})).toBe("only-net");
    await expect(resolveChainId(data, "missing-net", {})).rejects.toThrow(/no network "missing-net"/);
    const second = networkPaths(data, "second-net");
    await mkdir(second.root, { recursive: true });
    await writeFile(second.genesis, "{}");
    await expect(resolveChainId(data, undefined, {})).rejects.toThrow(/several networks; pass --chain-id/);
    expect(await resolveChainId(data, undefined, { DEEPSHARD_CHAIN_ID: "second-net" })).toBe("second-net");
  });
});
