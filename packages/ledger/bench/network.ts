/**
 * Four validator processes on loopback over libp2p (TCP, noise, yamux, gossipsub), each with a
 * LevelDB store in a temporary directory, on this machine's cores. Each process submits
 * presigned transfers from its own accounts to its own node; the nodes gossip them in batches,
 * and every node checks every signature once.
 *
 * 1. Saturation: every process offers more than the network can take; finalized transfers per
 *    second are counted from one node's commits over the steady part of the window.
 * 2. Half load: half of that rate; the finality latency of each transfer is the time from its
 *    submission to the commit of its block, on the node it was submitted to.
 *
 * Beside them, the ceiling signature checking allows: one core's ed25519 verifications per
 * second (measured now, same signing bytes) × cores ÷ validators, since every validator checks
 * every transaction's signature once and the validators share the cores.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchModule, type BenchRow, signingBytes, verify } from "@deepshard/protocol";
import { accountKey, transfer } from "../test/fixtures/devnet.ts";
import { type NodeLine, NodeProcess } from "../test/fixtures/node-processes.ts";

const VALIDATORS = 4;
/** Accounts per process: senders in turn, so nonces never run far ahead of one account. */
const SENDERS = 16;

/** One core's ed25519 verifications per second: the best of several short windows (others share the machine). */
function verificationsPerSecond(windows: number): number {
  const txs = Array.from({ length: 256 }, (_, i) =>
    transfer(accountKey(i % 8), accountKey(9).publicKey, BigInt(i + 1)),
  );
  const items = txs.map((t) => ({ sig: t.signature, msg: signingBytes(t.payload), key: t.signer }));
  let best = 0;
  for (let w = 0; w < windows; w++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 200) {
      for (const it of items) verify(it.sig, it.msg, it.key);
      n += items.length;
    }
    best = Math.max(best, (n * 1000) / (performance.now() - t0));
  }
  return best;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Window {
  /** Transfers committed per second on node 0 between the warm-up and the end of the load. */
  perSecond: number;
  latencies: number[];
}

/** Offers `rate` transfers per second in total for `seconds`, split over the processes. */
async function phase(nodes: NodeProcess[], rate: number, seconds: number, warmupS: number): Promise<Window> {
  const latencies: number[] = [];
  let counted = 0;
  const start = Date.now();
  const offs = nodes.map((n) =>
    n.onLine((line: NodeLine) => {
      if (line.type !== "commit") return;
      const at = Date.now() - start;
      if (at < warmupS * 1000 || at > seconds * 1000) return;
      if (Array.isArray(line.latencies)) latencies.push(...(line.latencies as number[]));
      if (n.index === 0) counted += line.txs as number;
    }),
  );
  for (const n of nodes) n.send({ cmd: "load", rate: rate / nodes.length, seconds });
  await Promise.all(nodes.map((n) => n.waitFor((l) => l.type === "loaded", (seconds + 30) * 1000)));
  for (const off of offs) off();
  return { perSecond: counted / (seconds - warmupS), latencies };
}

/** Waits until no node has pooled transactions left (or `timeoutMs`). */
async function drain(nodes: NodeProcess[], timeoutMs: number): Promise<void> {
  const empty = new Set<number>();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    const offs = nodes.map((n) =>
      n.onLine((l) => {
        if (l.type !== "commit") return;
        if (l.mempool === 0) empty.add(n.index);
        else empty.delete(n.index);
        if (empty.size === nodes.length) done();
      }),
    );
    function done() {
      clearTimeout(timer);
      for (const off of offs) off();
      resolve();
    }
  });
}

const bench: BenchModule = async (ctx) => {
  const seconds = ctx.quick ? 12 : 25;
  const warmup = ctx.quick ? 4 : 6;
  const cores = availableParallelism();
  const perCore = verificationsPerSecond(ctx.quick ? 5 : 15);
  const ceiling = (perCore * cores) / VALIDATORS;
  ctx.log(`network: ed25519 ${perCore.toFixed(0)} verify/s on one core → ceiling ${ceiling.toFixed(0)} tx/s`);

  const root = await mkdtemp(join(tmpdir(), "ds-bench-net-"));
  const nodes: NodeProcess[] = [];
  try {
    for (let i = 0; i < VALIDATORS; i++) {
      nodes.push(
        await NodeProcess.spawn({
          dataDir: join(root, `node-${i}`),
          index: i,
          validators: VALIDATORS,
          accounts: VALIDATORS * SENDERS + 1,
          // Each height has a fixed cost (votes, signatures, an fsynced commit on every node); at
          // 100 ms the four idle validators alone take a large share of this machine's two cores.
          blockIntervalMs: 300,
          // Blocks of 2000 (the node's default) capped a quiet machine near 4000 tx/s at about
          // two heights a second; 3000 transfers are 0.7 MB, well within a block's 1 MiB.
          maxBlockTxs: 3000,
          // Bounds the backlog saturation leaves behind, so the pools drain quickly after it.
          maxTxsPerSender: 128,
          compileCache: join(root, "cache"),
        }),
      );
    }
    for (const n of nodes)
      n.send({ cmd: "dial", addresses: nodes.filter((m) => m !== n).map((m) => m.address) });
    await Promise.all(nodes.map((n) => n.waitForHeight(3, 30_000)));

    // Offer the ceiling: more than the network finalizes, so the pools fill and stay full (the
    // load generator then waits for room: it never leaves nonce gaps).
    const offered = Math.ceil(ceiling);
    const presign = (rate: number) =>
      Promise.all(
        nodes.map((n) => {
          const from = Array.from({ length: SENDERS }, (_, k) => n.index * SENDERS + k);
          n.send({
            cmd: "presign",
            from,
            to: VALIDATORS * SENDERS,
            count: Math.ceil((rate * seconds) / VALIDATORS),
          });
          return n.waitFor((l) => l.type === "presigned", 120_000);
        }),
      );
    await presign(offered);
    const saturated = await phase(nodes, offered, seconds, warmup);
    ctx.log(`network: offered ${offered} tx/s, finalized ${saturated.perSecond.toFixed(0)} tx/s`);
    await drain(nodes, 60_000);

    const half = Math.max(1, Math.round(saturated.perSecond / 2));
    await presign(half);
    const halfLoad = await phase(nodes, half, seconds, warmup);
    const sorted = halfLoad.latencies.sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    ctx.log(`network: at ${half} tx/s, finality p50 ${p50} ms, p99 ${p99} ms (${sorted.length} transfers)`);

    const rows: BenchRow[] = [
      {
        package: "ledger",
        metric: "network 4 validator processes: signature ceiling (verify/s/core × cores ÷ validators)",
        value: ceiling,
        unit: "tx/s",
      },
      {
        package: "ledger",
        metric: "network 4 validator processes: finalized transfers at saturation",
        value: saturated.perSecond,
        unit: "tx/s",
        target: `>= ${Math.round(ceiling / 2)} (50% of ceiling)`,
        pass: saturated.perSecond >= ceiling / 2,
      },
      {
        package: "ledger",
        metric: "network 4 validator processes: share of the signature ceiling",
        value: (100 * saturated.perSecond) / ceiling,
        unit: "%",
        target: ">= 50",
        pass: saturated.perSecond >= ceiling / 2,
      },
      {
        package: "ledger",
        metric: `network 4 validator processes: finality p50 at half load (${half} tx/s)`,
        value: p50,
        unit: "ms",
      },
      {
        package: "ledger",
        metric: `network 4 validator processes: finality p99 at half load (${half} tx/s)`,
        value: p99,
        unit: "ms",
        target: "< 2000",
        pass: p99 < 2000,
      },
    ];
    return rows;
  } finally {
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(root, { recursive: true, force: true });
  }
};

export default bench;
