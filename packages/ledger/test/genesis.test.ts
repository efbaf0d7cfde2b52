/** The genesis file: create, write, load, and clear errors for bad input. */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepshardError } from "@deepshard/protocol";
import { afterEach, describe, expect, it } from "vitest";
import {
  createGenesis,
  genesisState,
  genesisToJson,
  loadGenesis,
  parseGenesis,
  writeGenesis,
} from "../src/genesis/genesis.ts";
import { toHex } from "../src/state/hashing.ts";
import { checkInvariants } from "../src/state/invariants.ts";
import { actor } from "./sim/harness.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const v = actor("genesis-validator");
const u = actor("genesis-user");

function expectInvalid(json: unknown, path: RegExp): void {
  let err: unknown;
  try {
    parseGenesis(json);
  } catch (e) {
    err = e;
  }
  expect(isDeepshardError(err, "GENESIS_INVALID"), String(err)).toBe(true);
  expect((err as Error).message).toMatch(path);
}

describe("genesis", () => {
  it("createGenesis → file → loadGenesis gives the same chain and the same state root", async () => {
    const g = createGenesis({
      chainId: "deepshard-test-7",
      validators: [{ address: v.publicKey, bonded: 5_000n, balance: 10n }],
      accounts: [{ address: u.publicKey, balance: 123_456_789_012_345_678_901n }],
      params: { unbondingDelay: 7, data: { votingWindow: 3 } },
    });
    const dir = await mkdtemp(join(tmpdir(), "ds-genesis-"));
    dirs.push(dir);
    const path = join(dir, "genesis.json");
    await writeGenesis(path, g);
    const text = await readFile(path, "utf8");
    expect(text).toContain('"balance": "123456789012345678901"');
    expect(text).toContain('"address": "ds1');
    const loaded = await loadGenesis(path);
    expect(loaded).toEqual(g);
    expect(loaded.params.unbondingDelay).toBe(7);
    const state = genesisState(loaded);
    expect(toHex(state.root)).toBe(toHex(genesisState(g).root));
    const meta = state.tables.meta.get("meta")!;
    expect(meta.genesisSupply).toBe(5_010n + 123_456_789_012_345_678_901n);
    expect(meta.validators).toEqual([{ address: v.address, power: 5_000n }]);
    checkInvariants(state);
  });

  it("the checked-in example genesis loads", async () => {
    const g = await loadGenesis(new URL("./fixtures/genesis.json", import.meta.url).pathname);
    expect(g.chainId).toBe("deepshard-devnet-1");
    checkInvariants(genesisState(g));
  });

  it("names the offending field", async () => {
    type Editable = {
      chainId: unknown;
      genesisWeightsId: unknown;
      params: Record<string, unknown> & { data: Record<string, unknown>; training: Record<string, unknown> };
      validators: { address: unknown; bonded: unknown }[];
      accounts: unknown[];
    };
    const good = genesisToJson(
      createGenesis({ validators: [{ address: v.publicKey, bonded: 5_000n }] }),
    ) as Editable;
    const edit = (f: (g: Editable) => void) => {
      const copy = structuredClone(good);
      f(copy);
      return copy;
    };
    expectInvalid(
      edit((g) => (g.chainId = "Bad Chain")),
      /chainId/,
    );
    expectInvalid(
      edit((g) => (g.params.unbondingDelay = 1.5)),
      /params\.unbondingDelay must be an integer/,
    );
    expectInvalid(
      edit((g) => (g.params.minFee = 5)),
      /params\.minFee must be a decimal string/,
    );
    expectInvalid(
      edit((g) => (g.params.data.criteriaWeightsBps = [1, 2, 3, 4, 5])),
      /criteriaWeightsBps must be weights summing/,
    );
    expectInvalid(
      edit((g) => (g.params.training.extra = 1)),
      /params\.training\.extra must be absent/,
    );
    expectInvalid(
      edit((g) => (g.validators[0].address = "ds1nope")),
      /validators\[0\]\.address must be a ds1/,
    );
    expectInvalid(
      edit((g) => (g.validators[0].bonded = "1")),
      /validators\[0\]\.bonded must be at least/,
    );
    expectInvalid(
      edit((g) => (g.validators = [])),
      /validators must be a non-empty list/,
    );
    expectInvalid(
      edit(
        (g) =>
          (g.accounts = [g.validators[0]!, g.validators[0]!].map((x) => ({
            address: x.address,
            balance: "1",
          }))),
      ),
      /accounts\[1\]\.address must be listed once/,
    );
    expectInvalid(
      edit((g) => (g.genesisWeightsId = "xyz")),
      /genesisWeightsId must be 64/,
    );
    expectInvalid(null, /genesis must be an object/);
  });

  it("reports unreadable and non-JSON files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ds-genesis-"));
    dirs.push(dir);
    await expect(loadGenesis(join(dir, "missing.json"))).rejects.toMatchObject({
      code: "GENESIS_READ_FAILED",
    });
    await writeFile(join(dir, "bad.json"), "{ not json");
    await expect(loadGenesis(join(dir, "bad.json"))).rejects.toMatchObject({ code: "GENESIS_INVALID" });
  });
});
