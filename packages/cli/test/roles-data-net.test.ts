/**
 * The data loop across libp2p: the informant on one node (not a validator), the validator on
 * another. The blob crosses the network; the informant's balance changes by exactly the reward
 * (accepted) or the stake (rejected), plus the fee. The validator restarted rebuilds its corpus
 * from the ledger and its blob store, and restarted mid-window it does not vote a second time.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeAddress } from "@deepshard/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeepshardClient } from "../src/node/client.ts";
import {
  type DataValidatorOptions,
  type DataValidatorService,
  dataValidatorOptionsFromEnv,
} from "../src/node/roles/data-validator/index.ts";
import { InformantClient } from "../src/node/roles/informant/client.ts";
import {
  type DataNetwork,
  GOOD_TEXT,
  makeDataNetwork,
  OTHER_GOOD_TEXT,
  REWARD_AT_FULL_VALUE,
  type RunningNode,
  startDataNode,
  until,
} from "./roles-data-fixture.ts";

let dir: string;
let net: DataNetwork;
const running = new Set<RunningNode>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-data-net-"));
  net = await makeDataNetwork(dir, [true, false], { data: { votingWindow: 10 } });
});

afterEach(async () => {
  for (const n of running) await n.daemon.stop(3_000);
  running.clear();
});

afterAll(() => rm(dir, { recursive: true, force: true }));

async function start(
  i: number,
  roles: ("validator" | "informant")[],
  bootstrap: string[] = [],
  validator: DataValidatorOptions = {},
) {
  const node = await startDataNode(net, i, { roles, bootstrap, validator });
  running.add(node);
  return node;
}

async function stop(node: RunningNode) {
  running.delete(node);
  await node.daemon.stop(3_000);
}

const validatorOf = (n: RunningNode) =>
  n.daemon.roles.find((r) => r.name === "validator") as DataValidatorService;
/** Votes sent, and votes attempted that the mempool refused. */
const votesIn = (n: RunningNode, submission: string) =>
  n.events.filter(
    (e) =>
      (e.type === "validator.vote" || e.type === "validator.vote_refused") &&
      (e as { submission?: string }).submission === submission,
  );

describe("informant and validator on two nodes", () => {
  it("moves the blob over libp2p, settles exact balances, and survives validator restarts", async () => {
    let validator = await start(0, ["validator"]);
    await until(() => validator.daemon.height >= 1);
    const informantNode = await start(1, ["informant"], validator.daemon.ledger.host.addresses().map(String));
    await until(
      () => informantNode.daemon.height >= validator.daemon.height - 1 && informantNode.daemon.height > 0,
    );
    const informant = new InformantClient(informantNode.daemon.apiUrl);
    const ledger = new DeepshardClient(informantNode.daemon.apiUrl);
    const me = encodeAddress(net.nodes[1]!.key.publicKey);
    const balance = async () => (await ledger.account(me)).balance;
    try {
      // Accepted: stake back plus the reward, the fee paid; the blob now also lives on the validator.
      const before = await balance();
      const good = await informant.submit(new TextEncoder().encode(GOOD_TEXT), { stake: 100n });
      const accepted = await informant.waitForOutcome(good.submission, { timeoutMs: 30_000 });
      expect(accepted.status).toBe("accepted");
      expect(accepted.reward).toBe((REWARD_AT_FULL_VALUE * BigInt(accepted.value!)) / 10_000n);
      expect(await balance()).toBe(before - 1n + accepted.reward!);
      expect(validator.events.some((e) => e.type === "validator.fetched")).toBe(true);
      expect(validator.daemon.stores.blobs.has(good.contentHash)).toBe(true);
      expect(votesIn(validator, good.submission)).toHaveLength(1);
      const noInformant = new InformantClient(validator.daemon.apiUrl);
      await expect(noInformant.status()).rejects.toMatchObject({ code: "NO_INFORMANT" });
      await noInformant.close();

      // Restarted, the validator indexes the accepted corpus again from the ledger and its store.
      const bootstrap = informantNode.daemon.ledger.host.addresses().map(String);
      await stop(validator);
      validator = await start(0, ["validator"], bootstrap);
      await until(() => validatorOf(validator).report().corpus.segments === 4);

      // A copy of the accepted text: the validator votes, is restarted while the window is open,
      // and does not vote again; the copy is rejected and the stake burned.
      const beforeJunk = await balance();
      const junk = await informant.submit(new TextEncoder().encode(`${GOOD_TEXT}\n\n`), { stake: 100n });
      const voted = () => {
        const sub = validator.daemon.ledger.state().tables.submissions.get(junk.submission);
        return sub !== undefined && Object.keys(sub.votes).length === 1;
      };
      await until(voted, 20_000);
      const firstLife = votesIn(validator, junk.submission);
      expect(firstLife).toHaveLength(1);
      expect((firstLife[0] as unknown as { scores: { novelty: number } }).scores.novelty).toBeLessThan(1_000);
      const height = validator.daemon.height;
      const closesAt = validator.daemon.ledger.state().tables.submissions.get(junk.submission)!.closesAt;
      expect(height).toBeLessThan(closesAt);
      await stop(validator);
      validator = await start(0, ["validator"], bootstrap);
      const rejected = await informant.waitForOutcome(junk.submission, { timeoutMs: 30_000 });
      expect(rejected.status).toBe("rejected");
      expect(votesIn(validator, junk.submission)).toHaveLength(0);
      expect(validatorOf(validator).report().votes).toHaveLength(0);
      expect(rejected.net).toBe(-100n);
      expect(await balance()).toBe(beforeJunk - 1n - 100n);
      expect(validatorOf(validator).report().active).toBe(true);
      expect((await ledger.supply()).holds).toBe(true);
      // The validator let the rejected blob go; the informant let it go after seeing the outcome.
      await until(
        () =>
          !validator.daemon.stores.blobs.has(junk.contentHash) &&
          !informantNode.daemon.stores.blobs.has(junk.contentHash),
      );
    } finally {
      await informant.close();
      await ledger.close();
    }
  });

  it("votes zero on a blob larger than announced and on one nobody serves; the judge and the model surprise score", async () => {
    let judged = 0;
    const judge: Server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        judged++;
        const content = '{"alignment": 9, "truthfulness": 8, "objectivity": 9}';
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ choices: [{ message: { role: "assistant", content } }] }));
      });
    });
    await new Promise<void>((r) => judge.listen(0, "127.0.0.1", r));
    const judgeUrl = `http://127.0.0.1:${(judge.address() as AddressInfo).port}/v1`;
    expect(() => dataValidatorOptionsFromEnv({ DEEPSHARD_JUDGE_URL: judgeUrl })).toThrow(
      /DEEPSHARD_JUDGE_MODEL/,
    );
    // The canonical model's surprise, here a stand-in: half what the model shows on its own corpus.
    const surpriseAsked: string[] = [];
    const options: DataValidatorOptions = {
      ...dataValidatorOptionsFromEnv({ DEEPSHARD_JUDGE_URL: judgeUrl, DEEPSHARD_JUDGE_MODEL: "stub" }),
      surprise: async (weightsId) => {
        surpriseAsked.push(weightsId);
        return { surprise: () => 1, referenceSurprise: 2 };
      },
    };

    const validator = await start(0, ["validator"], [], options);
    const informantNode = await start(1, ["informant"], validator.daemon.ledger.host.addresses().map(String));
    await until(() => informantNode.daemon.ledger.host.peers().length > 0 && informantNode.daemon.height > 0);
    const ledger = new DeepshardClient(informantNode.daemon.apiUrl);
    const informant = new InformantClient(informantNode.daemon.apiUrl);
    const key = net.nodes[1]!.key.secretKey;
    try {
      // Held by the informant, but announced 10 bytes shorter than it is.
      const bytes = new TextEncoder().encode("A text whose size the informant misstates in its submission.");
      const held = await informantNode.daemon.stores.blobs.put(bytes, { maxBytes: 1_000 });
      const contentHash = Buffer.from(held.hash, "hex");
      const short = await ledger.send(
        key,
        { type: "data.submit", contentHash, size: bytes.length - 10, stake: 30n },
        { wait: true, timeoutMs: 10_000 },
      );
      // Announced, and held by nobody.
      const ghostHashBytes = randomBytes(32);
      const ghostHash = ghostHashBytes.toString("hex");
      const ghost = await ledger.send(
        key,
        { type: "data.submit", contentHash: ghostHashBytes, size: 500, stake: 30n },
        { wait: true, timeoutMs: 10_000 },
      );
      const good = await informant.submit(new TextEncoder().encode(OTHER_GOOD_TEXT), { stake: 30n });

      const voteOn = (id: string) =>
        validator.events.find(
          (e) => e.type === "validator.vote" && (e as { submission?: string }).submission === id,
        ) as unknown as { verdict: string; combined: number; judge: boolean; scores: Record<string, number> };
      await until(() => voteOn(short.hash) !== undefined && voteOn(ghost.hash) !== undefined, 20_000);
      expect(voteOn(short.hash)).toMatchObject({ verdict: "invalid", combined: 0 });
      expect(voteOn(ghost.hash)).toMatchObject({ verdict: "unavailable", combined: 0 });
      expect(validator.events.some((e) => e.type === "validator.fetch_failed")).toBe(true);
      expect(validator.daemon.stores.blobs.has(held.hash)).toBe(false);

      const outcome = await informant.waitForOutcome(good.submission, { timeoutMs: 20_000 });
      expect(outcome.status).toBe("accepted");
      expect(voteOn(good.submission)).toMatchObject({
        verdict: "scored",
        judge: true,
        scores: { alignment: 9_000, truthfulness: 8_000, objectivity: 9_000 },
      });
      expect(judged).toBe(1);
      // Novelty = unseen × (0.5 + 0.5 × surprise ratio 0.5).
      expect(voteOn(good.submission).scores.novelty).toBeLessThanOrEqual(7_500);
      expect(voteOn(good.submission).scores.novelty).toBeGreaterThan(7_000);
      expect(surpriseAsked).toEqual(["00".repeat(32)]);
      // Both all-zero votes reject: the stakes are burned.
      const statusOf = (hash: string) => validator.daemon.ledger.state().tables.data.get(hash)?.status;
      await until(() => statusOf(held.hash) === "rejected" && statusOf(ghostHash) === "rejected", 10_000);
      expect((await ledger.supply()).holds).toBe(true);
      const metrics = await new DeepshardClient(validator.daemon.apiUrl).metrics();
      expect(metrics).toMatch(/deepshard_data_votes_total\{verdict="invalid"[^}]*\} 1/);
      expect(metrics).toMatch(/deepshard_data_votes_total\{verdict="unavailable"[^}]*\} 1/);
    } finally {
      await informant.close();
      await ledger.close();
      await new Promise((r) => judge.close(r));
    }
  });
});
