/**
 * Consensus in-process: 4 validators on the simulated network with real ed25519 signatures and
 * the protocol's canonical signing bytes, so the numbers are the cost of consensus itself
 * (signing, verifying, hashing, the engine) without sockets. Also the cost of checking a commit,
 * what block sync pays per block.
 */
import { type BenchModule, type BenchRow, commitPrecommit, medianMs, sha256 } from "@deepshard/protocol";
import { keySigner, protocolCrypto, ValidatorSet, verifyCommit } from "../src/index.ts";
import { Cluster } from "../test/sim/cluster.ts";

async function heightsPerSecond(
  heights: number,
  loss: number,
): Promise<{ perSecond: number; virtualMsPerHeight: number }> {
  const c = new Cluster({ seed: 11, powers: [1n, 1n, 1n, 1n], loss, maxDelayMs: loss > 0 ? 200 : 50 });
  await c.start();
  const t0 = performance.now();
  const done = await c.run(3_600_000, () => c.minHeight() >= heights);
  const wall = performance.now() - t0;
  c.stop();
  if (!done) throw new Error(`the simulation did not reach ${heights} heights`);
  return { perSecond: (heights * 1000) / wall, virtualMsPerHeight: c.net.scheduler.now() / heights };
}

function commitCheckMs(validators: number, repeats: number): Promise<number> {
  const signers = Array.from({ length: validators }, (_, i) =>
    keySigner(sha256(Uint8Array.of(i & 0xff, i >> 8, 7))),
  );
  const set = ValidatorSet.create(signers.map((s) => ({ publicKey: s.publicKey, power: 1n })));
  const blockHash = sha256(Uint8Array.of(1));
  const bytes = protocolCrypto.signingBytes(commitPrecommit("bench", { height: 1, round: 0, blockHash }));
  const signatures = signers
    .map((s) => ({ validator: s.publicKey, signature: s.sign(bytes) }))
    .sort((a, b) => Buffer.compare(a.validator, b.validator));
  const commit = { v: 1 as const, height: 1, round: 0, blockHash, signatures };
  return medianMs(repeats, () =>
    verifyCommit(commit, { chainId: "bench", validators: set, crypto: protocolCrypto, blockHash, height: 1 }),
  );
}

const bench: BenchModule = async (ctx) => {
  const heights = ctx.quick ? 40 : 200;
  const rows: BenchRow[] = [];
  const clean = await heightsPerSecond(heights, 0);
  ctx.log(`consensus sim: ${heights} heights, ${clean.perSecond.toFixed(0)} heights/s`);
  rows.push(
    {
      package: "ledger",
      metric: "consensus sim 4 validators: heights/s (wall)",
      value: clean.perSecond,
      unit: "heights/s",
    },
    {
      package: "ledger",
      metric: "consensus sim 4 validators: virtual ms/height",
      value: clean.virtualMsPerHeight,
      unit: "ms",
    },
  );
  const lossy = await heightsPerSecond(heights / 2, 0.2);
  rows.push(
    {
      package: "ledger",
      metric: "consensus sim 20% loss: heights/s (wall)",
      value: lossy.perSecond,
      unit: "heights/s",
    },
    {
      package: "ledger",
      metric: "consensus sim 20% loss: virtual ms/height",
      value: lossy.virtualMsPerHeight,
      unit: "ms",
    },
  );
  for (const n of [4, 100]) {
    rows.push({
      package: "ledger",
      metric: `verifyCommit, ${n} validators`,
      value: await commitCheckMs(n, ctx.quick ? 5 : 20),
      unit: "ms",
    });
  }
  return rows;
};

export default bench;
