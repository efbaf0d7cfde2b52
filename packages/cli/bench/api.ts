/**
 * The node's HTTP API on a real one-validator daemon: how fast it answers a status request, how
 * many signed transactions per second POST /tx takes into the mempool (decode, signature check,
 * stateful check), and how long a transfer takes from submission to its committed block.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGenesis, writeGenesis } from "@deepshard/ledger";
import {
  type BenchModule,
  type BenchRow,
  encodeAddress,
  encodeTx,
  generateKeyPair,
  medianMs,
  writeKeystore,
} from "@deepshard/protocol";
import { request } from "undici";
import { DeepshardClient } from "../src/node/client.ts";
import { defaultConfig } from "../src/node/config.ts";
import { Daemon } from "../src/node/daemon.ts";
import { networkPaths } from "../src/node/datadir.ts";
import { createLogger } from "../src/node/logger.ts";
import { signTx } from "../src/node/tx.ts";

const bench: BenchModule = async (ctx) => {
  const dir = await mkdtemp(join(tmpdir(), "deepshard-bench-api-"));
  const chainId = "bench-api";
  const paths = networkPaths(dir, chainId);
  const node = generateKeyPair();
  const senders = Array.from({ length: 8 }, () => generateKeyPair());
  await mkdir(paths.keys, { recursive: true });
  await writeKeystore(paths.nodeKey, node.secretKey, "bench", { kdf: { n: 16, r: 8, p: 1 } });
  await writeGenesis(
    paths.genesis,
    createGenesis({
      chainId,
      validators: [{ address: node.publicKey, bonded: 100_000n, balance: 1_000_000n }],
      accounts: senders.map((s) => ({ address: s.publicKey, balance: 1_000_000_000n })),
    }),
  );
  const daemon = await Daemon.start({
    paths,
    config: { ...defaultConfig(chainId), listen: ["/ip4/127.0.0.1/tcp/0"], apiPort: 0, blockIntervalMs: 100 },
    secretKey: node.secretKey,
    logger: createLogger("silent"),
  });
  const client = new DeepshardClient(daemon.apiUrl);
  const rows: BenchRow[] = [];
  try {
    const statusMs = await medianMs(ctx.quick ? 50 : 300, () => client.status());
    rows.push({
      package: "cli",
      metric: "api GET /status median",
      value: statusMs,
      unit: "ms",
      target: "<= 5",
      pass: statusMs <= 5,
    });

    // Signed beforehand: the measurement is the node's intake, not the client's signing.
    const perSender = ctx.quick ? 100 : 500;
    const bodies = senders.flatMap((s) =>
      Array.from({ length: perSender }, (_, i) =>
        JSON.stringify({
          tx: Buffer.from(
            encodeTx(
              signTx(
                s.secretKey,
                { type: "transfer", to: node.publicKey, amount: 1n },
                {
                  chainId,
                  nonce: BigInt(i + 1),
                  fee: 1n,
                },
              ),
            ),
          ).toString("hex"),
        }),
      ),
    );
    // Interleave senders so each one's nonces arrive in order while 16 requests are in flight.
    const order = Array.from(
      { length: bodies.length },
      (_, k) => (k % senders.length) * perSender + Math.floor(k / senders.length),
    );
    let next = 0;
    let refused = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < order.length) {
          const body = bodies[order[next++]!]!;
          const res = await request(`${daemon.apiUrl}/tx`, {
            method: "POST",
            body,
            headers: { "content-type": "application/json" },
          });
          await res.body.dump();
          if (res.statusCode !== 202) refused++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const rate = (bodies.length - refused) / seconds;
    ctx.log(
      `POST /tx: ${bodies.length} transfers from ${senders.length} senders, ${refused} refused, ${seconds.toFixed(2)} s`,
    );
    rows.push({
      package: "cli",
      metric: "api POST /tx accepted",
      value: rate,
      unit: "tx/s",
      target: ">= 500",
      pass: rate >= 500 && refused === 0,
    });

    await new Promise<void>((resolve) => {
      const check = () => (daemon.ledger.mempool().txs === 0 ? resolve() : setTimeout(check, 50));
      check();
    });
    const user = senders[0]!;
    const inclusion = await medianMs(ctx.quick ? 3 : 10, () =>
      client.transfer(user.secretKey, encodeAddress(node.publicKey), 1n, { wait: true }),
    );
    rows.push({
      package: "cli",
      metric: "transfer submit → committed (100 ms blocks) median",
      value: inclusion,
      unit: "ms",
    });
  } finally {
    await client.close();
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
};

export default bench;
