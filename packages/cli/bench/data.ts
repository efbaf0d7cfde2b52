/**
 * The data loop on loopback: an informant node (not a validator) and a validator node. One blob of
 * plain text is submitted through the API; the validator fetches it over libp2p, scores it and
 * votes. Rows: the API's intake of the blob, the fetch, the scoring (and its throughput), and the
 * time from the submission to the vote (the target: half the default window of 20 one-second blocks), and
 * the longest the event loop stalled meanwhile (scoring must leave consensus the thread).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { BenchModule, BenchRow } from "@deepshard/protocol";
import { InformantClient } from "../src/node/roles/informant/client.ts";
import { makeDataNetwork, type RunningNode, startDataNode } from "../test/roles-data-fixture.ts";

const SYLLABLES = "ka lo mi ne ru sa te vi do pa ri go la me nu so ta be fi ho".split(" ");

/**
 * Paragraphs of pseudo-random sentences over a vocabulary of 8,000 made-up words (a fixed
 * generator: every run scores the same text).
 */
function text(bytes: number): string {
  let x = 0x2545f491;
  const next = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const vocabulary = Array.from({ length: 8_000 }, (_, i) => {
    const parts = [SYLLABLES[i % 20]!, SYLLABLES[Math.floor(i / 20) % 20]!, SYLLABLES[Math.floor(i / 400)]!];
    return parts.join("");
  });
  const out: string[] = [];
  let size = 0;
  while (size < bytes) {
    const sentences: string[] = [];
    for (let s = 0; s < 5; s++) {
      const words = Array.from({ length: 12 }, () => vocabulary[next(vocabulary.length)]!);
      sentences.push(`${words.join(" ")}.`);
    }
    const paragraph = sentences.join(" ");
    out.push(paragraph);
    size += paragraph.length + 2;
  }
  return out.join("\n\n");
}

const bench: BenchModule = async (ctx) => {
  const size = ctx.quick ? 256 * 1024 : 1024 * 1024;
  const dir = await mkdtemp(join(tmpdir(), "deepshard-bench-data-"));
  const nodes: RunningNode[] = [];
  try {
    const net = await makeDataNetwork(dir, [true, false], { data: { votingWindow: 60 } });
    const validator = await startDataNode(net, 0, { roles: ["validator"] });
    nodes.push(validator);
    const informantNode = await startDataNode(net, 1, {
      roles: ["informant"],
      bootstrap: validator.daemon.ledger.host.addresses().map(String),
      informant: { maxBytes: 4 * 1024 * 1024 },
    });
    nodes.push(informantNode);
    while (informantNode.daemon.ledger.host.peers().length === 0 || informantNode.daemon.height < 1) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const blob = new TextEncoder().encode(text(size).slice(0, size));
    const client = new InformantClient(informantNode.daemon.apiUrl);
    const validatorKey = Buffer.from(net.nodes[0]!.key.publicKey).toString("hex");
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const t0 = performance.now();
    const sent = await client.submit(blob, { stake: 100n });
    const intakeMs = performance.now() - t0;
    await client.close();
    const find = (type: string) =>
      validator.events.find(
        (e) => e.type === type && (e as { submission?: string }).submission === sent.submission,
      ) as Record<string, number> | undefined;
    // The vote counts once it is in a block: the height at which the ledger first shows it.
    let submittedAt: number | undefined;
    let votedAt: number | undefined;
    const deadline = Date.now() + 120_000;
    while (votedAt === undefined && Date.now() < deadline) {
      const state = validator.daemon.ledger.state();
      const sub = state.tables.submissions.get(sent.submission);
      submittedAt ??= sub?.submittedAt;
      if (sub?.votes[validatorKey]) votedAt = state.tables.meta.get("meta")!.height;
      await new Promise((r) => setTimeout(r, 10));
    }
    const voteMs = performance.now() - t0;
    delay.disable();
    const vote = find("validator.vote");
    const fetched = find("validator.fetched");
    if (!vote || !fetched || votedAt === undefined || submittedAt === undefined)
      throw new Error("the validator did not vote within 120 s");
    const blocks = votedAt - submittedAt;
    const maxDelayMs = delay.max / 1e6;
    const mib = blob.length / (1024 * 1024);
    ctx.log(`data loop: ${blob.length} bytes, vote after ${blocks} blocks, ${Math.round(voteMs)} ms`);
    const row = (metric: string, value: number, unit: string, target?: string, pass?: boolean): BenchRow => ({
      package: "cli",
      metric,
      value: Math.round(value * 100) / 100,
      unit,
      ...(target === undefined ? {} : { target, pass }),
    });
    return [
      row(`informant submit intake (${mib.toFixed(2)} MiB)`, intakeMs, "ms"),
      row(`validator blob fetch over libp2p (${mib.toFixed(2)} MiB)`, fetched.ms!, "ms"),
      row(`validator scoring (${mib.toFixed(2)} MiB, no judge)`, vote.ms!, "ms"),
      row("validator scoring throughput", mib / (vote.ms! / 1000), "MiB/s"),
      row(
        "submission to vote",
        voteMs,
        "ms",
        "<= 10000 (half the default window of 20 1-s blocks)",
        voteMs <= 10_000,
      ),
      row("submission to vote (100-ms blocks here)", blocks, "blocks"),
      row("event loop: longest stall, submission to vote", maxDelayMs, "ms", "<= 250", maxDelayMs <= 250),
    ];
  } finally {
    for (const n of nodes.reverse()) await n.daemon.stop(3_000);
    await rm(dir, { recursive: true, force: true });
  }
};

export default bench;
