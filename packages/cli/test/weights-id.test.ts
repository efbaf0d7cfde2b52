/**
 * One model folder, one weights id: what `deepshard model inspect` prints is what the network
 * names the folder when it is a genesis model (the devnet's genesis, `deepshard init --model`).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGenesis, loadGenesis, writeGenesis } from "@deepshard/ledger";
import { generateKeyPair } from "@deepshard/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChunkStore } from "../src/node/blobs/index.ts";
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
  const env = { ...process.env, DEEPSHARD_PASSPHRASE: "pw" };
  return new Promise((done) => {
    execFile(process.execPath, [bin, ...args], { encoding: "utf8", env }, (err, stdout, stderr) =>
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

describe("deepshard init --model", () => {
  it("names the folder's weights id in the new genesis and stores its chunks in the node", async () => {
    const data = join(dir, "init");
    const [made, inspected] = await Promise.all([
      cli(["init", "--chain-id", "modelnet", "--data-dir", data, "--model", fixture, "--json"]),
      cli(["model", "inspect", fixture, "--json"]),
    ]);
    expect(made.code, made.stderr).toBe(0);
    const { weightsId } = JSON.parse(inspected.stdout);
    expect(JSON.parse(made.stdout).weightsId).toBe(weightsId);
    const paths = networkPaths(data, "modelnet");
    const genesis = await loadGenesis(paths.genesis);
    expect(Buffer.from(genesis.genesisWeightsId).toString("hex")).toBe(weightsId);
    const chunks = await ChunkStore.open(paths.root);
    const manifest = chunks.manifest(weightsId)!;
    expect(manifest.files.map((f) => f.name)).toEqual(["config.json", "model.safetensors"]);
    expect(chunks.indices(weightsId)).toHaveLength(manifest.chunkCount);
  });

  it("refuses a folder that is not a model before writing anything, and --model with --join", async () => {
    const data = join(dir, "init-bad");
    const joined = join(dir, "joined-genesis.json");
    await writeGenesis(
      joined,
      createGenesis({
        chainId: "joined",
        validators: [{ address: generateKeyPair().publicKey, bonded: 100_000n }],
      }),
    );
    const [notModel, joining] = await Promise.all([
      cli(["init", "--chain-id", "badnet", "--data-dir", data, "--model", dir]),
      cli(["init", "--join", joined, "--data-dir", data, "--model", fixture]),
    ]);
    expect(notModel.code).toBe(1);
    expect(notModel.stderr).toMatch(/^error: cannot read .*config\.json/);
    expect(existsSync(networkPaths(data, "badnet").root)).toBe(false);
    expect(joining.code).toBe(1);
    expect(joining.stderr).toMatch(/^error: --model applies to a new network, not with --join/);
  });
});
