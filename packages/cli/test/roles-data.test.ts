/**
 * The data loop on a one-validator network whose node also runs the informant role: good text is
 * fetched from the node's own store, scored, voted on, accepted and rewarded; a duplicate of it is
 * scored low and rejected, its stake burned; the supply adds up. Then the CLI's `informant submit`:
 * a full run through a child process, and its errors as one clear line.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientError, DeepshardClient } from "../src/node/client.ts";
import type { VoteRecord } from "../src/node/roles/data-validator/index.ts";
import { buildSubmission } from "../src/node/roles/informant/blob.ts";
import { InformantClient } from "../src/node/roles/informant/client.ts";
import {
  GOOD_TEXT,
  makeDataNetwork,
  OTHER_GOOD_TEXT,
  REWARD_AT_FULL_VALUE,
  type RunningNode,
  startDataNode,
  until,
} from "./roles-data-fixture.ts";

const run = promisify(execFile);
const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const MAX_BYTES = 4_096;

let dir: string;
let node: RunningNode;
let informant: InformantClient;
let ledger: DeepshardClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-data-"));
  const net = await makeDataNetwork(dir, [true]);
  node = await startDataNode(net, 0, {
    roles: ["validator", "informant"],
    informant: { maxBytes: MAX_BYTES },
  });
  informant = new InformantClient(node.daemon.apiUrl);
  ledger = new DeepshardClient(node.daemon.apiUrl);
  await until(() => node.daemon.height >= 1);
});

afterAll(async () => {
  await informant?.close();
  await ledger?.close();
  await node?.daemon.stop();
  await rm(dir, { recursive: true, force: true });
});

function votesOn(submission: string): VoteRecord[] {
  return node.events
    .filter((e) => e.type === "validator.vote" && (e as { submission?: string }).submission === submission)
    .map((e) => e as unknown as VoteRecord);
}

describe("the data loop on one node", () => {
  let acceptedText: string;

  it("accepts and rewards good novel text, voted once by the validator", async () => {
    const supplyBefore = await ledger.supply();
    const sent = await informant.submit(new TextEncoder().encode(GOOD_TEXT), { stake: 100n });
    expect(sent).toMatchObject({ stake: 100n, size: Buffer.byteLength(GOOD_TEXT) });
    const outcome = await informant.waitForOutcome(sent.submission, { timeoutMs: 20_000 });
    expect(outcome.status).toBe("accepted");
    expect(outcome.value).toBeGreaterThanOrEqual(outcome.threshold!);
    expect(outcome.reward).toBe((REWARD_AT_FULL_VALUE * BigInt(outcome.value!)) / 10_000n);
    expect(outcome.net).toBe(outcome.reward);
    acceptedText = GOOD_TEXT;

    const votes = votesOn(sent.submission);
    expect(votes).toHaveLength(1);
    expect(votes[0]!.verdict).toBe("scored");
    expect(votes[0]!.scores.novelty).toBeGreaterThan(9_000);
    expect(votes[0]!.segments).toBe(4);

    const events = node.events.filter((e) => (e as { submission?: string }).submission === sent.submission);
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        "informant.submitted",
        "informant.included",
        "validator.vote",
        "informant.outcome",
      ]),
    );
    // The accepted blob stays (trainers need it) and its segments joined the novelty index.
    expect(node.daemon.stores.blobs.has(sent.contentHash)).toBe(true);
    await until(() => node.events.some((e) => e.type === "validator.corpus"));

    const supply = await ledger.supply();
    expect(supply.holds).toBe(true);
    expect(supply.minted - supplyBefore.minted).toBeGreaterThanOrEqual(outcome.reward!);
    expect(supply.burned).toBe(supplyBefore.burned);
    const metrics = await ledger.metrics();
    expect(metrics).toMatch(/deepshard_data_votes_total\{verdict="scored"[^}]*\} 1/);
    expect(metrics).toMatch(/deepshard_informant_submissions_total\{outcome="accepted"[^}]*\} 1/);
  });

  it("rejects a duplicate of accepted data and burns its stake", async () => {
    // The same paragraphs, other bytes (extra blank lines): a new content hash, no new content.
    const junk = `${acceptedText.replaceAll("\n\n", "\n\n\n")}\n`;
    const supplyBefore = await ledger.supply();
    const sent = await informant.submit(new TextEncoder().encode(junk), { stake: 150n });
    const outcome = await informant.waitForOutcome(sent.submission, { timeoutMs: 20_000 });
    expect(outcome.status).toBe("rejected");
    expect(outcome.value).toBeLessThan(outcome.threshold!);
    expect(outcome.reward).toBe(0n);
    expect(outcome.net).toBe(-150n);
    const [vote] = votesOn(sent.submission);
    expect(vote!.scores.novelty).toBeLessThan(1_000);
    expect(vote!.scores.reproducibility).toBe(0);

    const supply = await ledger.supply();
    expect(supply.holds).toBe(true);
    expect(supply.burned - supplyBefore.burned).toBe(150n);
    // A rejected blob is let go.
    await until(() => !node.daemon.stores.blobs.has(sent.contentHash));
    const status = await informant.status();
    expect(status.submissions.map((s) => s.status)).toEqual(["accepted", "rejected"]);
  });

  it("refuses what it cannot take, with the reason", async () => {
    const big = new Uint8Array(MAX_BYTES + 1).fill(0x61);
    await expect(informant.submit(big, { stake: 100n })).rejects.toMatchObject({
      code: "TOO_LARGE",
      status: 413,
    });
    await expect(informant.submit(new TextEncoder().encode("a b c"), { stake: 1n })).rejects.toMatchObject({
      code: "BAD_STAKE",
    });
    await expect(informant.submit(new Uint8Array([0xff, 0xfe, 0x00]), { stake: 100n })).rejects.toMatchObject(
      {
        code: "NOT_TEXT",
      },
    );
    await expect(
      informant.submit(new TextEncoder().encode(GOOD_TEXT), { stake: 100n }),
    ).rejects.toMatchObject({ code: "ALREADY_SUBMITTED", status: 409 });
    await expect(informant.submission("00".repeat(32))).rejects.toBeInstanceOf(ClientError);
    // Nothing refused stays in the store.
    expect(node.daemon.stores.blobs.list()).toHaveLength(1);
  });

  it("builds one JSONL blob from a folder, a record per paragraph or JSONL line", async () => {
    const folder = join(dir, "notes");
    await import("node:fs/promises").then((fs) => fs.mkdir(join(folder, "sub"), { recursive: true }));
    await writeFile(join(folder, "b.txt"), "First paragraph.\n\nSecond paragraph.\n");
    await writeFile(join(folder, "sub", "a.jsonl"), '{"text":"a record"}\n\n{"text":"another"}\n');
    await writeFile(join(folder, ".hidden"), "skipped");
    const blob = await buildSubmission(folder, MAX_BYTES);
    expect(blob.format).toBe("jsonl");
    expect(blob.files).toEqual(["b.txt", "sub/a.jsonl"]);
    expect(new TextDecoder().decode(blob.bytes).split("\n")).toEqual([
      '{"source":"b.txt","text":"First paragraph."}',
      '{"source":"b.txt","text":"Second paragraph."}',
      '{"text":"a record"}',
      '{"text":"another"}',
      "",
    ]);
    await writeFile(join(folder, "sub", "bad.jsonl"), "not json\n");
    await expect(buildSubmission(folder, MAX_BYTES)).rejects.toMatchObject({ code: "BAD_JSONL" });
    await expect(buildSubmission(folder, 10)).rejects.toMatchObject({ code: "TOO_LARGE" });
  });
});

describe("deepshard informant submit", () => {
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [bin, "informant", "submit", ...args], {
        env: { ...process.env, DEEPSHARD_DATA_DIR: join(dir, "no-data-dir") },
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it("submits a file, waits for the outcome and reports the balance change", async () => {
    const file = join(dir, "other.txt");
    await writeFile(file, OTHER_GOOD_TEXT);
    const out = await cli([
      file,
      "--stake",
      "40",
      "--metadata",
      "source: a test",
      "--wait",
      "--json",
      "--api",
      node.daemon.apiUrl,
    ]);
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    const result = JSON.parse(out.stdout) as Record<string, string>;
    expect(result).toMatchObject({ status: "accepted", stake: "40", format: "text", files: ["other.txt"] });
    expect(BigInt(result.net!)).toBe(BigInt(result.reward!));
    expect(BigInt(result.balanceAfter!)).toBeGreaterThan(0n);
  });

  it("says in one line what is wrong, without a stack trace", async () => {
    const missing = await cli([join(dir, "nope.txt"), "--stake", "40", "--api", node.daemon.apiUrl]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`error: no such file or folder: ${join(dir, "nope.txt")}\n`);

    const big = join(dir, "big.txt");
    await writeFile(big, "word ".repeat(MAX_BYTES));
    const tooLarge = await cli([big, "--stake", "40", "--api", node.daemon.apiUrl]);
    expect(tooLarge.code).toBe(1);
    expect(tooLarge.stderr).toBe(
      `error: ${big} is too large to submit: it is ${5 * MAX_BYTES} bytes, the node accepts at most ${MAX_BYTES}\n`,
    );

    const noNode = await cli([big, "--stake", "40", "--api", "http://127.0.0.1:1"]);
    expect(noNode.code).toBe(1);
    expect(noNode.stderr).toMatch(/^error: cannot reach the node at http:\/\/127\.0\.0\.1:1\b[^\n]*\n$/);
    expect(noNode.stderr).not.toMatch(/\n\s+at /);

    const badStake = await cli([big, "--stake", "ten", "--api", node.daemon.apiUrl]);
    expect(badStake.code).toBe(1);
    expect(badStake.stderr).toMatch(
      /^error: --stake must be a whole number of tokens below 2\^64\b[^\n]*\n$/,
    );
  });
});
