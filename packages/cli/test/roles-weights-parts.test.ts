/**
 * The weights validator's parts without a round: the probe pools and their draw by the beacon,
 * the on-disk journal across a reopen, the environment settings, and the validator role running
 * its data and weights parts in one daemon.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BYTE_VOCAB, ByteTokenizer, genesisCorpus } from "@deepshard/tensor";
import { PROBE_SETS } from "@deepshard/validator";
import { afterEach, describe, expect, it } from "vitest";
import { defaultConfig } from "../src/node/config.ts";
import { Daemon } from "../src/node/daemon.ts";
import { createLogger } from "../src/node/logger.ts";
import { DataValidatorService } from "../src/node/roles/data-validator/index.ts";
import {
  ValidatorService,
  WeightsValidatorService,
  weightsValidatorOptionsFromEnv,
} from "../src/node/roles/weights-validator/index.ts";
import { WeightsValidatorJournal } from "../src/node/roles/weights-validator/journal.ts";
import { roundProbes, tokenWindows } from "../src/node/roles/weights-validator/probes.ts";
import { CHAIN_ID, MAIN_BOND, makeWeightsNetwork } from "./roles-storage-fixture.ts";

const tokenizer = new ByteTokenizer(BYTE_VOCAB);
const examples = genesisCorpus(40, "parts-batch").map((t) => ({ tokens: [...tokenizer.encode(t), 256] }));
const beacon = (n: number) => n.toString(16).padStart(64, "0");

describe("the probes", () => {
  it("windows a token stream at the context length; a stream shorter than one window is one probe", () => {
    expect(
      tokenWindows(
        [
          [1, 2, 3],
          [4, 5, 6, 7],
        ],
        3,
      ),
    ).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(tokenWindows([[1, 2]], 8)).toEqual([[1, 2]]);
    expect(tokenWindows([[1]], 8)).toEqual([]);
  });

  it("are drawn by the beacon: the same beacon the same probes, another beacon others", () => {
    const input = { examples, heldOutBlobs: [], tokenizer, maxPositions: 64 };
    const a = roundProbes({ ...input, beacon: beacon(1) });
    expect(roundProbes({ ...input, beacon: beacon(1) })).toEqual(a);
    const b = roundProbes({ ...input, beacon: beacon(2) });
    expect(b.key).not.toBe(a.key);
    for (const set of PROBE_SETS) {
      expect(a.probes[set].length).toBeGreaterThan(0);
      for (const p of a.probes[set]) {
        expect(p.length).toBeGreaterThanOrEqual(2);
        expect(p.length).toBeLessThanOrEqual(64);
      }
    }
    // Batch probes are windows of the batch's token stream.
    const stream = examples.flatMap((e) => e.tokens).join(",");
    for (const p of a.probes.batch) expect(stream).toContain(p.join(","));
    expect(a.heldOut).toBe("generated");
  });

  it("hold out accepted data outside the batch when the node has some, else generated text", () => {
    const other = new TextEncoder().encode(genesisCorpus(30, "parts-held-out").join("\n\n"));
    const probes = roundProbes({
      examples,
      heldOutBlobs: [other],
      tokenizer,
      maxPositions: 64,
      beacon: beacon(3),
    });
    expect(probes.heldOut).toBe("accepted");
    const text = tokenizer.encode(new TextDecoder().decode(other)).join(",");
    expect(text).toContain(probes.probes.heldOut[0]!.slice(0, 10).join(","));
    // A blob that is not UTF-8 gives nothing to hold out.
    expect(
      roundProbes({
        examples,
        heldOutBlobs: [new Uint8Array([0xff, 0xfe])],
        tokenizer,
        maxPositions: 64,
        beacon: beacon(3),
      }).heldOut,
    ).toBe("generated");
  });
});

describe("the journal", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it("keeps verdict records across a reopen, and only the open round's folders", async () => {
    const root = await mkdtemp(join(tmpdir(), "deepshard-wv-journal-"));
    dirs.push(root);
    const journal = await WeightsValidatorJournal.open(root);
    await journal.putVerdict({
      round: 4,
      state: "sent",
      height: 17,
      tx: "ab".repeat(32),
      attempts: 1,
      mode: "judged",
      verdicts: [
        {
          trainer: "cd".repeat(32),
          weightsId: "ef".repeat(32),
          accept: false,
          reasons: ["copy"],
          score: 2.5,
          replayed: false,
        },
      ],
      ms: 12,
    });
    for (const round of [3, 4]) {
      await mkdir(journal.replicaDir(round, 0), { recursive: true });
      await journal.tempDir(round);
    }
    // A file that is not a record is ignored.
    await writeFile(join(journal.root, "verdicts", "round-9.json"), "{not json");

    const reopened = await WeightsValidatorJournal.open(root);
    expect(reopened.verdict(4)).toEqual(journal.verdict(4));
    expect(reopened.verdicts().map((r) => r.round)).toEqual([4]);
    await reopened.keepOnly(4, { temp: true });
    expect(await readdir(join(journal.root, "rounds"))).toEqual(["4"]);
    expect(await readdir(reopened.roundDir(4))).toEqual(["replica-0"]);
    expect(await reopened.has(reopened.replicaDir(4, 0))).toBe(true);
  });
});

describe("the settings", () => {
  it("take the replicas from DEEPSHARD_VALIDATOR_REPLICAS and refuse fewer than two", () => {
    expect(weightsValidatorOptionsFromEnv({})).toEqual({});
    expect(weightsValidatorOptionsFromEnv({ DEEPSHARD_VALIDATOR_REPLICAS: "3" })).toEqual({ replicas: 3 });
    expect(() => weightsValidatorOptionsFromEnv({ DEEPSHARD_VALIDATOR_REPLICAS: "1" })).toThrow(
      /DEEPSHARD_VALIDATOR_REPLICAS must be an integer from 2 to 99/,
    );
    expect(() => weightsValidatorOptionsFromEnv({ DEEPSHARD_VALIDATOR_REPLICAS: "two" })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
  });
});

describe("the validator role", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it("runs the data part and the weights part, and stops both", async () => {
    const dir = await mkdtemp(join(tmpdir(), "deepshard-wv-role-"));
    dirs.push(dir);
    const net = await makeWeightsNetwork(dir, [MAIN_BOND]);
    const role = new ValidatorService(new DataValidatorService(), new WeightsValidatorService());
    const daemon = await Daemon.start({
      paths: net.pathsOf(0),
      config: {
        ...defaultConfig(CHAIN_ID),
        roles: ["validator"],
        listen: ["/ip4/127.0.0.1/tcp/0"],
        apiPort: 0,
        blockIntervalMs: 100,
        logLevel: "silent",
      },
      secretKey: net.keys[0]!.secretKey,
      logger: createLogger("silent"),
      roles: { validator: () => role },
    });
    try {
      const data = await fetch(`${daemon.api.url}/validator/data`);
      expect(data.status).toBe(200);
      const weights = await fetch(`${daemon.api.url}/validator/weights`);
      expect(weights.status).toBe(200);
      expect(await weights.json()).toMatchObject({ active: true, replicas: 2, round: null, verdicts: [] });
    } finally {
      expect(await daemon.stop(5_000)).toBe(true);
    }
  });
});
