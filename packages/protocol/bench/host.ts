/**
 * The libp2p host on loopback: request/response blob throughput next to a raw node:net socket moving the
 * same bytes in the same run (both with a length prefix, both landing in one buffer), and gossip
 * messages per second among four hosts.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { BenchModule, BenchRow } from "../src/bench.ts";
import { createHost, type Host } from "../src/host/index.ts";

const PROTOCOL = "/deepshard/bench/blob/1";
/** Noise's largest plaintext per message: 65535 bytes minus the 16-byte tag. */
const NOISE_PLAINTEXT = 65519;
const TOPIC = "/deepshard/bench/gossip/1";

const bench: BenchModule = async (ctx) => {
  const size = ctx.quick ? 16 << 20 : 64 << 20;
  const repeats = ctx.quick ? 3 : 5;
  const label = `${size >> 20} MiB`;
  const blob = new Uint8Array(size);
  for (let i = 0; i < size; i += 997) blob[i] = i & 0xff;

  // Raw and libp2p runs alternate, so a load change on this shared machine hits both alike.
  const { rawMs, hostMs, cipherMs } = await withRawServer(blob, (port) =>
    withHosts(2, async ([client, server]) => {
      await server!.handle(PROTOCOL, () => blob, { maxResponseBytes: size });
      await client!.dial(server!.addresses()[0]!);
      const viaHost = async () => {
        const got = await client!.request(server!.peerId, PROTOCOL, new Uint8Array(1), {
          maxResponseBytes: size,
        });
        if (got.byteLength !== size || got[997] !== blob[997]) throw new Error("blob corrupted");
      };
      const raw: number[] = [];
      const host: number[] = [];
      const cipher: number[] = [];
      await viaHost();
      await rawFetch(port, size);
      for (let i = 0; i < repeats; i++) {
        host.push(await timeMs(viaHost));
        raw.push(await timeMs(() => rawFetch(port, size)));
        cipher.push(await timeMs(async () => sealAndOpen(blob)));
      }
      return { rawMs: median(raw), hostMs: median(host), cipherMs: median(cipher) };
    }),
  );
  const mbps = (ms: number) => size / 1e6 / (ms / 1000);
  const ratio = (100 * mbps(hostMs)) / mbps(rawMs);
  ctx.log(
    `host: request/response ${label}: ${hostMs.toFixed(0)} ms, raw TCP ${rawMs.toFixed(0)} ms, ` +
      `noise's cipher alone ${cipherMs.toFixed(0)} ms`,
  );
  const rows: BenchRow[] = [
    {
      package: "protocol",
      metric: `request/response ${label} blob (libp2p)`,
      value: mbps(hostMs),
      unit: "MB/s",
    },
    { package: "protocol", metric: `raw TCP ${label} blob (node:net)`, value: mbps(rawMs), unit: "MB/s" },
    {
      // What noise adds on one core: both ends' ChaCha20-Poly1305, one node:crypto cipher per message.
      package: "protocol",
      metric: `noise ChaCha20-Poly1305 seal+open ${label} (64 KiB messages)`,
      value: mbps(cipherMs),
      unit: "MB/s",
    },
    {
      package: "protocol",
      metric: "request/response vs raw TCP",
      value: ratio,
      unit: "%",
      target: ">= 50",
      pass: ratio >= 50,
    },
  ];

  const messages = ctx.quick ? 500 : 2000;
  const rate = await withHosts(4, (hosts) => gossipRate(hosts, messages));
  ctx.log(`host: gossip ${messages} messages among 4 hosts: ${rate.toFixed(0)}/s`);
  rows.push({
    package: "protocol",
    metric: "gossip among 4 hosts (256 B messages)",
    value: rate,
    unit: "msg/s",
  });
  return rows;
};

export default bench;

/** Encrypts and decrypts `data` as noise does: one fresh ChaCha20-Poly1305 cipher per 65519-byte message. */
function sealAndOpen(data: Uint8Array): void {
  const key = new Uint8Array(32).fill(7);
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  for (let offset = 0, n = 0; offset < data.byteLength; offset += NOISE_PLAINTEXT, n++) {
    view.setUint32(4, n, true);
    const plain = data.subarray(offset, offset + NOISE_PLAINTEXT);
    const seal = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    const sealed = Buffer.concat([seal.update(plain), seal.final()]);
    const open = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    open.setAuthTag(seal.getAuthTag());
    open.update(sealed);
    open.final();
  }
}

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function withHosts<T>(count: number, fn: (hosts: Host[]) => Promise<T>): Promise<T> {
  const hosts: Host[] = [];
  try {
    for (let i = 0; i < count; i++) hosts.push(await createHost({ gossip: { heartbeatIntervalMs: 200 } }));
    return await fn(hosts);
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
  }
}

/** Publishes `messages` from the first host; the rate is counted until every other host has them all. */
async function gossipRate(hosts: Host[], messages: number): Promise<number> {
  for (let i = 0; i < hosts.length; i++) {
    for (let j = i + 1; j < hosts.length; j++) await hosts[i]!.dial(hosts[j]!.addresses()[0]!);
  }
  const expected = messages * (hosts.length - 1);
  let received = 0;
  let done: () => void = () => {};
  const allIn = new Promise<void>((resolve) => {
    done = resolve;
  });
  for (const host of hosts) {
    host.subscribe(
      TOPIC,
      () => "accept",
      () => {
        if (++received === expected) done();
      },
    );
  }
  const publisher = hosts[0]!;
  const deadline = Date.now() + 10_000;
  while (publisher.meshPeers(TOPIC).length < hosts.length - 1) {
    if (Date.now() > deadline) throw new Error("gossip mesh did not form");
    await new Promise((r) => setTimeout(r, 50));
  }
  const payload = new Uint8Array(256);
  const t0 = performance.now();
  for (let i = 0; i < messages; i++) {
    new DataView(payload.buffer).setUint32(0, i);
    await publisher.publish(TOPIC, payload);
  }
  await Promise.race([
    allIn,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`gossip: ${received}/${expected}`)), 60_000),
    ),
  ]);
  return messages / ((performance.now() - t0) / 1000);
}

/** A raw TCP server answering every connection with a 4-byte length and the blob. */
async function withRawServer<T>(blob: Uint8Array, fn: (port: number) => Promise<T>): Promise<T> {
  const server: Server = createServer((socket: Socket) => {
    socket.once("data", () => {
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, blob.byteLength);
      socket.write(header);
      socket.end(blob);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    return await fn(address.port);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Fetches one blob over a fresh raw connection into one buffer, as the host's requester does. */
function rawFetch(port: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(new Uint8Array(1)));
    let out: Uint8Array | undefined;
    let header = new Uint8Array(0);
    let filled = 0;
    socket.on("data", (chunk: Buffer) => {
      let data: Uint8Array = chunk;
      if (out === undefined) {
        const joined = new Uint8Array(header.byteLength + data.byteLength);
        joined.set(header);
        joined.set(data, header.byteLength);
        if (joined.byteLength < 4) {
          header = joined;
          return;
        }
        out = Buffer.allocUnsafe(new DataView(joined.buffer).getUint32(0));
        data = joined.subarray(4);
      }
      out.set(data, filled);
      filled += data.byteLength;
    });
    socket.on("error", reject);
    socket.on("end", () => (filled === size ? resolve() : reject(new Error(`raw: ${filled}/${size} bytes`))));
  });
}
