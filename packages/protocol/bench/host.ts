/**
 * The libp2p host on loopback: request/response blob throughput next to a raw node:net socket moving the
 * same bytes in the same run (both with a length prefix, both landing in one buffer), and gossip
 * messages per second among four hosts.
 *
 * The target row serves from a child process (bench/host-server.ts), as a holder and a requester are
 * separate processes with their own event loops on a real network; the one-process rows, where both
 * ends share one event loop and one core, are kept for comparison.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { connect, type Server } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { BenchModule, BenchRow } from "../src/bench.ts";
import { createHost, type Host } from "../src/host/index.ts";
import { BLOB_PROTOCOL, benchBlob, rawBlobServer } from "./host-server.ts";

/** Noise's largest plaintext per message: 65535 bytes minus the 16-byte tag (noise serves peers without TLS). */
const NOISE_PLAINTEXT = 65519;
const TOPIC = "/deepshard/bench/gossip/1";
const SERVER_ENTRY = join(import.meta.dirname, "host-server.ts");

/** Medians over the rounds: wall time, and CPU time of both ends together (every thread of each process). */
interface Timings {
  hostMs: number;
  rawMs: number;
  hostCpuMs: number;
  rawCpuMs: number;
}

/** The serving process's CPU time so far (all threads); absent when it is this process. */
type ServedCpu = (() => Promise<number>) | undefined;

const bench: BenchModule = async (ctx) => {
  const size = ctx.quick ? 16 << 20 : 64 << 20;
  const repeats = ctx.quick ? 3 : 9;
  const label = `${size >> 20} MiB`;
  const blob = benchBlob(size);
  const mbps = (ms: number) => size / 1e6 / (ms / 1000);
  const ratio = (t: Timings) => (100 * t.rawMs) / t.hostMs;

  const apart = await withServerProcess(size, (server) =>
    withHosts(1, async ([client]) => {
      await client!.dial(server.multiaddr);
      ctx.log(`host: connection encrypted with ${client!.libp2p.getConnections()[0]?.encryption}`);
      return alternate(
        repeats,
        () => fetchViaHost(client!, server.multiaddr, blob),
        () => rawFetch(server.port, size),
        server.cpuMs,
      );
    }),
  );
  const together = await withRawServer(blob, (port) =>
    withHosts(2, async ([client, server]) => {
      await server!.handle(BLOB_PROTOCOL, () => blob, { maxResponseBytes: size });
      await client!.dial(server!.addresses()[0]!);
      return alternate(
        repeats,
        () => fetchViaHost(client!, server!.peerId, blob),
        () => rawFetch(port, size),
        undefined,
      );
    }),
  );
  const cipherMs = median(await repeat(repeats, async () => sealAndOpen(blob)));
  const describe = (t: Timings) =>
    `${t.hostMs.toFixed(0)} ms (CPU ${t.hostCpuMs.toFixed(0)} ms), raw TCP ${t.rawMs.toFixed(0)} ms ` +
    `(CPU ${t.rawCpuMs.toFixed(0)} ms)`;
  ctx.log(`host: request/response ${label}, two processes: ${describe(apart)}`);
  ctx.log(`host: request/response ${label}, one process: ${describe(together)}`);
  ctx.log(`host: noise's cipher alone (seal+open) ${cipherMs.toFixed(0)} ms`);
  const row = (metric: string, value: number, unit: string): BenchRow => ({
    package: "protocol",
    metric,
    value,
    unit,
  });
  const rows: BenchRow[] = [
    row(`request/response ${label} blob (libp2p, two processes)`, mbps(apart.hostMs), "MB/s"),
    row(`raw TCP ${label} blob (node:net, two processes)`, mbps(apart.rawMs), "MB/s"),
    {
      ...row("request/response vs raw TCP (two processes)", ratio(apart), "%"),
      target: ">= 50",
      pass: ratio(apart) >= 50,
    },
    // CPU does not depend on what else the machine runs; on a busy machine wall time follows it.
    row(`request/response ${label}: CPU of both processes (libp2p)`, apart.hostCpuMs, "ms"),
    row(`raw TCP ${label}: CPU of both processes (node:net)`, apart.rawCpuMs, "ms"),
    row(`request/response ${label} blob (libp2p, one process)`, mbps(together.hostMs), "MB/s"),
    row(`raw TCP ${label} blob (node:net, one process)`, mbps(together.rawMs), "MB/s"),
    row("request/response vs raw TCP (one process)", ratio(together), "%"),
    // What noise adds on one core: both ends' ChaCha20-Poly1305, one node:crypto cipher per message.
    row(`noise ChaCha20-Poly1305 seal+open ${label} (64 KiB messages)`, mbps(cipherMs), "MB/s"),
  ];

  const messages = ctx.quick ? 500 : 2000;
  const rate = await withHosts(4, (hosts) => gossipRate(hosts, messages));
  ctx.log(`host: gossip ${messages} messages among 4 hosts: ${rate.toFixed(0)}/s`);
  rows.push(row("gossip among 4 hosts (256 B messages)", rate, "msg/s"));
  return rows;
};

export default bench;

/**
 * One warm-up each, then libp2p and raw rounds alternate (which goes first alternating too), so a load
 * change on this shared machine hits both alike.
 */
async function alternate(
  repeats: number,
  viaHost: () => Promise<void>,
  viaRaw: () => Promise<void>,
  servedCpu: ServedCpu,
): Promise<Timings> {
  await viaHost();
  await viaRaw();
  const host = { ms: [] as number[], cpu: [] as number[] };
  const raw = { ms: [] as number[], cpu: [] as number[] };
  const measure = async (fetch: () => Promise<void>, into: { ms: number[]; cpu: number[] }) => {
    // The serving process is asked outside the timed part: each question waits for it to be scheduled.
    const served0 = servedCpu ? await servedCpu() : 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await fetch();
    into.ms.push(performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    const served = servedCpu ? (await servedCpu()) - served0 : 0;
    into.cpu.push((cpu.user + cpu.system) / 1000 + served);
  };
  for (let i = 0; i < repeats; i++) {
    if (i % 2 === 0) {
      await measure(viaHost, host);
      await measure(viaRaw, raw);
    } else {
      await measure(viaRaw, raw);
      await measure(viaHost, host);
    }
  }
  return {
    hostMs: median(host.ms),
    rawMs: median(raw.ms),
    hostCpuMs: median(host.cpu),
    rawCpuMs: median(raw.cpu),
  };
}

async function fetchViaHost(client: Host, target: Parameters<Host["request"]>[0], blob: Uint8Array) {
  const got = await client.request(target, BLOB_PROTOCOL, new Uint8Array(1), {
    maxResponseBytes: blob.byteLength,
  });
  if (got.byteLength !== blob.byteLength || got[997] !== blob[997]) throw new Error("blob corrupted");
}

interface ServerProcess {
  multiaddr: string;
  port: number;
  /** The child's CPU time so far, all threads. */
  cpuMs(): Promise<number>;
}

/**
 * Runs bench/host-server.ts in a child process for the length of `fn`. The child is killed however this
 * ends: closing its stdin stops it (also when this process dies), and SIGKILL follows after a grace
 * period, or at once when this process exits first.
 */
async function withServerProcess<T>(size: number, fn: (server: ServerProcess) => Promise<T>): Promise<T> {
  const child = spawn(process.execPath, [SERVER_ENTRY, String(size)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  try {
    const lines = lineReader(child);
    const ready = JSON.parse(await lines.next()) as { multiaddr: string; port: number };
    return await fn({
      ...ready,
      cpuMs: async () => {
        child.stdin!.write("cpu\n");
        return (JSON.parse(await lines.next()) as { cpuMs: number }).cpuMs;
      },
    });
  } finally {
    child.stdin!.end();
    const grace = setTimeout(kill, 2000);
    await exited;
    clearTimeout(grace);
    process.removeListener("exit", kill);
  }
}

/** The child's stdout line by line; `next()` fails when the child exits or stays silent for 30 s. */
function lineReader(child: ChildProcess): { next(): Promise<string> } {
  const queued: string[] = [];
  let waiting: { resolve: (line: string) => void; reject: (err: Error) => void } | undefined;
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    waiting?.reject(failure);
    waiting = undefined;
  };
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (waiting) waiting.resolve(line);
    else queued.push(line);
    waiting = undefined;
  });
  child.once("error", fail);
  child.once("exit", (code, signal) => fail(new Error(`bench server exited (${code ?? signal})`)));
  return {
    next() {
      const line = queued.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => fail(new Error("bench server: no answer in 30 s")), 30_000);
        const done =
          <A>(settle: (a: A) => void) =>
          (a: A) => {
            clearTimeout(timer);
            settle(a);
          };
        waiting = { resolve: done(resolve), reject: done(reject) };
      });
    },
  };
}

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

async function repeat(times: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) out.push(await timeMs(fn));
  return out;
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
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      allIn,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`gossip: ${received}/${expected}`)), 60_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return messages / ((performance.now() - t0) / 1000);
}

/** The raw server of bench/host-server.ts, in this process, for the one-process rows. */
async function withRawServer<T>(blob: Uint8Array, fn: (port: number) => Promise<T>): Promise<T> {
  const server: Server = rawBlobServer(blob);
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
