/**
 * One model folder, one weights id: what `deepshard model inspect` prints is what the network
 * names the folder when it is a genesis model (the devnet's genesis, its storage nodes' chunks).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGenesis } from "@deepshard/ledger";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { networkPaths } from "../src/node/datadir.ts";
import { prepareDevnet } from "../src/node/devnet.ts";
import { WEIGHTS_CHUNK_SIZE } from "../src/node/weights-id.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const fixture = "/work/shared/fixtures/hf/gpt2-tiny";
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-weights-id-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [bin, ...args], { encoding: "utf8" }, (err, stdout, stderr) =>
      done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("the weights id of a model folder", () => {
  it("is the same in `model inspect` as in the genesis the network is started with", async () => {
    const [inspected, help, devnet] = await Promise.all([
      cli(["model", "inspect", fixture, "--json"]),
      cli(["model", "inspect", "--help"]),
      prepareDevnet({ dir: join(dir, "devnet"), roles: [["validator", "storage"]], model: fixture }),
    ]);
    expect(inspected.code, inspected.stderr).toBe(0);
    const info = JSON.parse(inspected.stdout);
    const genesis = await loadGenesis(networkPaths(devnet.nodes[0]!.dataDir, devnet.chainId).genesis);
    expect(info.weightsId).toBe(devnet.weightsId);
    expect(info.weightsId).toBe(Buffer.from(genesis.genesisWeightsId).toString("hex"));
    // The config travels with the weights, so a fetched folder loads.
    expect(info.files.map((f: { name: string }) => f.name)).toEqual(["config.json", "model.safetensors"]);
    expect(info.chunkSize).toBe(WEIGHTS_CHUNK_SIZE);
    expect(help.stdout).toContain(`in ${WEIGHTS_CHUNK_SIZE / 1024} KiB chunks`);
  }, 60_000);
});
