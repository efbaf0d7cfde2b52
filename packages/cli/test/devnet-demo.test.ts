/**
 * `deepshard devnet`'s demo, run as the real command with --json on a small devnet prepared here
 * (tiny genesis model, short windows; the command reuses it): the demo's steps come out in the
 * order of the cycle — data submitted, accepted, the copy rejected, a round opened, verdicts,
 * new canonical weights, a license bought, the weights fetched, a sample generated. The cycle's
 * outcomes themselves are asserted in depth by e2e.test.ts; this checks the driver.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { ParamsOverrides } from "@deepshard/ledger";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareDevnet, spreadRoles } from "../src/node/devnet.ts";
import { makeByzantine } from "../src/node/devnet-demo.ts";

const RECIPE = { steps: 10, batchSize: 4, context: 32, nEmbd: 16, nLayer: 1, nHead: 2 };
const PARAMS: ParamsOverrides = {
  downtime: { window: 10_000, minSignedBps: 1_000 },
  data: { votingWindow: 12, minStake: 10n },
  training: {
    batchSize: 1,
    commitWindow: 50,
    revealWindow: 30,
    verdictWindow: 60,
    hyperParameters: { learningRateMicro: 5000, epochs: 1, microBatch: 4 },
  },
};
const ROLES = "validator=3,storage=3,informant=2,trainer=2,inference=1";

let dir: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-demo-"));
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((done) => child!.once("exit", done));
    child.kill("SIGTERM");
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe("deepshard devnet demo", () => {
  it("tells a whole cycle in order, from submitted data to a generated sample", async () => {
    const manifest = await prepareDevnet({
      dir,
      roles: spreadRoles(3, ROLES),
      recipe: RECIPE,
      params: PARAMS,
      chunkSize: 4096,
    });
    expect(makeByzantine(structuredClone(manifest))?.roles).toContain("trainer");
    child = spawn(
      process.execPath,
      [
        join(import.meta.dirname, "..", "bin", "deepshard.js"),
        "devnet",
        "--nodes",
        "3",
        "--roles",
        ROLES,
        "--dir",
        dir,
        "--json",
        "--byzantine",
      ],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, DEEPSHARD_BLOCK_INTERVAL_MS: "250" } },
    );
    const lines: { type: string; [key: string]: unknown }[] = [];
    const exited = new Promise<number | null>((done) => child!.once("exit", done));
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(
        () => fail(new Error(`no sample within 130 s; saw ${lines.map((l) => l.type).join(" ")}`)),
        130_000,
      );
      createInterface({ input: child!.stdout! }).on("line", (line) => {
        lines.push(JSON.parse(line));
        const last = lines.at(-1)!;
        if (last.type === "demo.sample" || last.type === "demo.error") {
          clearTimeout(timer);
          done();
        }
      });
    });
    child.kill("SIGTERM");
    expect(await exited).toBe(0);

    const types = lines.map((l) => l.type);
    expect(types).not.toContain("demo.error");
    const at = (type: string) => {
      const i = types.indexOf(type);
      expect(i, `${type} in ${types.join(" ")}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const order = [
      "demo.submitted",
      "demo.accepted",
      "demo.round_opened",
      "demo.verdict",
      "demo.canonical",
      "demo.license",
      "demo.fetched",
      "demo.sample",
    ].map(at);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(at("demo.rejected")).toBeGreaterThan(at("demo.accepted"));
    expect(types.filter((t) => t === "demo.submitted")).toHaveLength(2);
    const slashedTrainer = lines.find((l) => l.type === "demo.trainer_outcome" && l.outcome === "slashed");
    expect(slashedTrainer, "the byzantine trainer is slashed").toBeDefined();
    const price = lines.find((l) => l.type === "demo.price")!;
    expect(BigInt(String(price.after))).toBeGreaterThan(BigInt(String(price.before)));
    const sample = lines.find((l) => l.type === "demo.sample")!;
    expect(String(sample.text).length).toBeGreaterThan(String(sample.prompt).length);
    // The demo's own lines replace the raw role events and successful transactions.
    expect(types).not.toContain("informant.submitted");
    expect(lines.filter((l) => l.type === "tx" && l.code === 0)).toHaveLength(0);
  }, 150_000);
});
