import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { readKeystore } from "@deepshard/protocol";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DeepshardClient } from "../src/node/client.ts";
import { killChildren, makeNetwork, PASSPHRASE } from "./node-fixture.ts";

const bin = join(import.meta.dirname, "..", "bin", "deepshard.js");
const root = await mkdtemp(join(tmpdir(), "ds-node-events-"));
const children: ChildProcess[] = [];

afterEach(() => killChildren(children));
afterAll(() => rm(root, { recursive: true, force: true }));

/** Each stdout line of `child`, in order; the next one with `next()`. */
function lineReader(child: ChildProcess) {
  const queue: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const take = waiting.shift();
    if (take) take(line);
    else queue.push(line);
  });
  return {
    next(timeoutMs = 15_000): Promise<string> {
      const ready = queue.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line within ${timeoutMs} ms`)), timeoutMs);
        waiting.push((line) => {
          clearTimeout(timer);
          resolve(line);
        });
      });
    },
  };
}

describe("deepshard node start on a pipe", () => {
  it("prints the startup line, then one JSON line per event, without --json", async () => {
    const net = await makeNetwork(join(root, "data"));
    const { DEEPSHARD_PASSPHRASE: _p, ...env } = process.env;
    const child = spawn(process.execPath, [bin, "node", "start", "--data-dir", net.dataDir], {
      env: { ...env, DEEPSHARD_PASSPHRASE: PASSPHRASE, DEEPSHARD_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    const lines = lineReader(child);

    const started = JSON.parse(await lines.next(60_000)) as Record<string, unknown>;
    expect(started).toMatchObject({ chainId: "test-net", address: net.nodeAddress });
    expect(started.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(started.peerId).toEqual(expect.any(String));
    expect(started.listen).toEqual([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+/)]);

    const events: Array<Record<string, unknown>> = [];
    const nextEvent = async () => {
      const event = JSON.parse(await lines.next()) as Record<string, unknown>;
      expect(event).toMatchObject({
        id: expect.any(Number),
        type: expect.any(String),
        time: expect.any(Number),
      });
      events.push(event);
      return event;
    };
    let block = await nextEvent();
    while (block.type !== "block") block = await nextEvent();
    expect(block).toMatchObject({
      height: expect.any(Number),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });

    // A transaction shows up as its own line, with its result.
    const user = await readKeystore(join(net.paths.root, "keys", "user.key"), PASSPHRASE);
    const client = new DeepshardClient(started.api as string);
    try {
      const sent = await client.transfer(user.secretKey, net.nodeAddress, 3n);
      let tx = await nextEvent();
      while (tx.type !== "tx") tx = await nextEvent();
      expect(tx).toMatchObject({ hash: sent.hash, txType: "transfer", sender: net.userAddress, code: 0 });
    } finally {
      await client.close();
    }
    // Ids increase by one per event: a reader can resume from the API's /events?since=<id>.
    const ids = events.map((e) => e.id as number);
    expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));
  });
});
