/**
 * The canonical codec on the hottest message, a signed transfer: encode (validate + CBOR) and
 * decode (strict CBOR + canonical re-encode check + validate), and a 1,000-transaction block.
 */
import type { BenchModule, BenchRow } from "../src/bench.ts";
import { medianMs } from "../src/bench.ts";
import { type Block, blockCodec, type SignedTx, signingBytes, txCodec } from "../src/messages.ts";

const PACKAGE = "protocol";
/** A node must decode transactions at least as fast as it verifies their signatures (the verify target). */
const TX_TARGET = 5000;

function transfer(i: number): SignedTx {
  const key = (b: number) => new Uint8Array(32).fill(b);
  return {
    payload: {
      v: 1,
      type: "transfer",
      chainId: "deepshard-bench-1",
      nonce: BigInt(i),
      fee: 1_000n,
      to: key(i & 255),
      amount: 123_456_789_000n + BigInt(i),
    },
    signer: key(7),
    signature: new Uint8Array(64).fill(9),
  };
}

const bench: BenchModule = async (ctx) => {
  const n = ctx.quick ? 2_000 : 20_000;
  const repeats = ctx.quick ? 3 : 7;
  const txs = Array.from({ length: 256 }, (_, i) => transfer(i));
  const encoded = txs.map((t) => txCodec.encode(t));
  const rows: BenchRow[] = [];
  const row = (metric: string, value: number, unit: string, target?: number) =>
    rows.push({
      package: PACKAGE,
      metric,
      value,
      unit,
      ...(target === undefined ? {} : { target: `>= ${target}`, pass: value >= target }),
    });

  const encodeMs = await medianMs(repeats, () => {
    for (let i = 0; i < n; i++) txCodec.encode(txs[i & 255]!);
  });
  row("transfer tx encode", (n * 1000) / encodeMs, "ops/s", TX_TARGET);

  const decodeMs = await medianMs(repeats, () => {
    for (let i = 0; i < n; i++) txCodec.decode(encoded[i & 255]!);
  });
  row("transfer tx decode+validate", (n * 1000) / decodeMs, "ops/s", TX_TARGET);

  const signMs = await medianMs(repeats, () => {
    for (let i = 0; i < n; i++) signingBytes(txs[i & 255]!.payload);
  });
  row("transfer signing bytes", (n * 1000) / signMs, "ops/s");

  const block: Block = {
    v: 1,
    header: {
      v: 1,
      chainId: "deepshard-bench-1",
      height: 2,
      time: 1_750_000_000_000,
      prevHash: new Uint8Array(32),
      txRoot: new Uint8Array(32),
      appHash: new Uint8Array(32),
      proposer: new Uint8Array(32),
      lastCommitHash: new Uint8Array(32),
    },
    txs: Array.from({ length: 1000 }, (_, i) => transfer(i)),
    lastCommit: null,
  };
  const blockBytes = blockCodec.encode(block);
  const blockMs = await medianMs(repeats, () => blockCodec.decode(blockBytes));
  row("block of 1000 transfers decode+validate", blockBytes.length / 1e6 / (blockMs / 1000), "MB/s");
  ctx.log(
    `codec: block of 1000 transfers is ${blockBytes.length} bytes, decoded in ${blockMs.toFixed(2)} ms`,
  );
  return rows;
};

export default bench;
