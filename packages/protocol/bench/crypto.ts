/**
 * Signatures and Merkle roots: sign, verify through noble and through Node's crypto, batches in one
 * thread and over every core, and the Merkle root of 64 MiB in 1 MiB chunks (in memory and streamed).
 */
import type { BenchModule, BenchRow } from "../src/bench.ts";
import { medianMs } from "../src/bench.ts";
import {
  closeVerifyPool,
  generateKeyPair,
  type SignedItem,
  sign,
  verify,
  verifyBatch,
  verifyBatchParallel,
  verifyNoble,
} from "../src/keys.ts";
import { merkleRoot, merkleRootOfStream } from "../src/merkle.ts";

const PACKAGE = "protocol";
/** About the size of a signed transfer transaction. */
const MESSAGE_BYTES = 200;

const bench: BenchModule = async (ctx) => {
  const n = ctx.quick ? 1000 : 4000;
  const repeats = ctx.quick ? 3 : 5;
  const keys = Array.from({ length: 256 }, () => generateKeyPair());
  const items: SignedItem[] = Array.from({ length: n }, (_, i) => {
    const { secretKey, publicKey } = keys[i % keys.length]!;
    const message = new Uint8Array(MESSAGE_BYTES);
    for (let j = 0; j < MESSAGE_BYTES; j += 7) message[j] = (i * 31 + j) & 0xff;
    return { signature: sign(secretKey, message), message, publicKey };
  });
  const opsPerSecond = (count: number, ms: number) => (count * 1000) / ms;
  const rows: BenchRow[] = [];
  const row = (metric: string, value: number, unit: string, target?: number) => {
    rows.push({
      package: PACKAGE,
      metric,
      value,
      unit,
      ...(target === undefined ? {} : { target: `>= ${target}`, pass: value >= target }),
    });
    ctx.log(`  ${metric}: ${Math.round(value)} ${unit}`);
  };

  const signMs = await medianMs(repeats, () => {
    for (let i = 0; i < n; i++) sign(keys[i % keys.length]!.secretKey, items[i]!.message);
  });
  row("ed25519 sign (native)", opsPerSecond(n, signMs), "ops/s");

  const nobleCount = Math.min(n, ctx.quick ? 200 : 1000);
  const nobleMs = await medianMs(repeats, () => {
    for (let i = 0; i < nobleCount; i++) {
      const { signature, message, publicKey } = items[i]!;
      if (!verifyNoble(signature, message, publicKey)) throw new Error("noble refused a valid signature");
    }
  });
  row("ed25519 verify (noble, reference)", opsPerSecond(nobleCount, nobleMs), "ops/s");

  const nativeMs = await medianMs(repeats, () => {
    for (const { signature, message, publicKey } of items) {
      if (!verify(signature, message, publicKey)) throw new Error("verify refused a valid signature");
    }
  });
  row("ed25519 verify (native, one core)", opsPerSecond(n, nativeMs), "ops/s", 5000);

  const batchMs = await medianMs(repeats, () => {
    if (!verifyBatch(items).every(Boolean)) throw new Error("verifyBatch refused a valid signature");
  });
  row("ed25519 verifyBatch (one thread)", opsPerSecond(n, batchMs), "ops/s", 5000);

  const parallelMs = await medianMs(repeats, async () => {
    if (!(await verifyBatchParallel(items)).every(Boolean))
      throw new Error("parallel batch refused a signature");
  });
  await closeVerifyPool();
  row("ed25519 verifyBatchParallel (all cores)", opsPerSecond(n, parallelMs), "ops/s", 5000);

  const mib = ctx.quick ? 16 : 64;
  const chunkSize = 1 << 20;
  const data = new Uint8Array(mib * chunkSize);
  for (let i = 0; i < data.length; i += 4093) data[i] = i & 0xff;
  const chunks = Array.from({ length: mib }, (_, i) => data.subarray(i * chunkSize, (i + 1) * chunkSize));
  const rootMs = await medianMs(repeats, () => merkleRoot(chunks));
  row(`merkle root ${mib} MiB in 1 MiB chunks`, (data.length / 1e6 / rootMs) * 1000, "MB/s");

  // The same bytes arriving as 64 KiB pieces, as from a socket or a file.
  async function* pieces(): AsyncGenerator<Uint8Array> {
    for (let o = 0; o < data.length; o += 64 << 10) yield data.subarray(o, o + (64 << 10));
  }
  const streamMs = await medianMs(repeats, () => merkleRootOfStream(pieces(), chunkSize));
  row(`merkle root ${mib} MiB streamed in 64 KiB pieces`, (data.length / 1e6 / streamMs) * 1000, "MB/s");
  return rows;
};

export default bench;
