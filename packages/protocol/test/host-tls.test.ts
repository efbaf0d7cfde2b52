/**
 * The host's TLS encrypter (src/host/tls.ts) on real TCP connections: it speaks @libp2p/tls's protocol
 * with stock libp2p nodes both ways, falls back to noise for peers without TLS, encrypts what crosses
 * the wire, authenticates the peer it dialled, and survives connections torn down under it.
 */
import { randomFillSync } from "node:crypto";
import { createServer, type Server, Socket, connect as tcpConnect } from "node:net";
import { noise } from "@chainsafe/libp2p-noise";
import type { Connection, Libp2p } from "@libp2p/interface";
import { tcp } from "@libp2p/tcp";
import { tls } from "@libp2p/tls";
import { yamux } from "@libp2p/yamux";
import { multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import { afterEach, describe, expect, it } from "vitest";
import { createHost, type Host, HostError } from "../src/host/index.ts";
import { silentLogger } from "../src/host/logger.ts";
import { handleProtocol, sendRequest } from "../src/host/reqresp.ts";

const ECHO = "/test/echo/1";
const MiB = 1 << 20;

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function host(): Promise<Host> {
  const h = await createHost();
  closers.push(() => h.stop());
  await h.handle(ECHO, (request) => request, { maxRequestBytes: 8 * MiB, maxResponseBytes: 8 * MiB });
  return h;
}

/** A libp2p node as other projects build it, with one encrypter, answering the host's echo protocol. */
async function stockNode(encrypter: "tls" | "noise"): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
    transports: [tcp()],
    connectionEncrypters: [encrypter === "tls" ? tls() : noise()],
    streamMuxers: [yamux()],
  });
  const stopping = new AbortController();
  closers.push(async () => {
    stopping.abort();
    await node.stop();
  });
  const limits = { maxRequestBytes: 8 * MiB, maxResponseBytes: 8 * MiB };
  await handleProtocol(node, ECHO, (request) => request, limits, stopping.signal, silentLogger);
  return node;
}

/** Byte equality without vitest's element-by-element diffing, which takes seconds per MiB. */
function expectSame(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.byteLength).toBe(expected.byteLength);
  expect(Buffer.compare(actual, expected)).toBe(0);
}

function randomBlob(size: number): Uint8Array {
  return randomFillSync(new Uint8Array(size));
}

async function echoFromStock(node: Libp2p, target: Host, body: Uint8Array): Promise<Uint8Array> {
  const options = { maxResponseBytes: 8 * MiB };
  return sendRequest(node, target.addresses()[0]!, ECHO, body, options, new AbortController().signal);
}

describe("the host's TLS", () => {
  it("interoperates with @libp2p/tls, dialling and dialled", async () => {
    const ours = await host();
    const theirs = await stockNode("tls");
    const blob = randomBlob(4 * MiB + 3);

    await ours.dial(theirs.getMultiaddrs()[0]!);
    const connection = ours.libp2p.getConnections(theirs.peerId)[0]!;
    expect(connection.encryption).toBe("/tls/1.0.0");
    expect(readInJavaScript(connection)).toBe(false);
    expectSame(await ours.request(theirs.peerId, ECHO, blob, { maxResponseBytes: 8 * MiB }), blob);

    const dialled = await host();
    expectSame(await echoFromStock(theirs, dialled, blob), blob);
    const inbound = dialled.libp2p.getConnections(theirs.peerId);
    expect(inbound.map((c) => [c.direction, c.encryption])).toEqual([["inbound", "/tls/1.0.0"]]);
    expect(readInJavaScript(inbound[0]!)).toBe(false);
  });

  it("falls back to noise for a peer without TLS, dialling and dialled", async () => {
    const ours = await host();
    const theirs = await stockNode("noise");
    const blob = randomBlob(MiB);

    await ours.dial(theirs.getMultiaddrs()[0]!);
    expect(ours.libp2p.getConnections(theirs.peerId)[0]!.encryption).toBe("/noise");
    expectSame(await ours.request(theirs.peerId, ECHO, blob), blob);

    const dialled = await host();
    expectSame(await echoFromStock(theirs, dialled, blob), blob);
    const inbound = dialled.libp2p.getConnections(theirs.peerId);
    expect(inbound.map((c) => [c.direction, c.encryption])).toEqual([["inbound", "/noise"]]);
  });

  it("sends nothing of the plaintext over TCP", async () => {
    const [a, b] = [await host(), await host()];
    const tap = await tapProxy(tcpPort(b));
    // A pattern no cipher output repeats: the whole 1 MiB body is 16-byte counters.
    const body = new Uint8Array(MiB);
    const view = new DataView(body.buffer);
    for (let i = 0; i < body.byteLength; i += 16) view.setUint32(i, i / 16);

    await a.dial(multiaddr(`/ip4/127.0.0.1/tcp/${tap.port}/p2p/${b.peerId}`));
    expectSame(await a.request(b.peerId, ECHO, body), body);
    const both = [Buffer.concat(tap.sent), Buffer.concat(tap.received)];
    for (const wire of both) {
      expect(wire.byteLength).toBeGreaterThan(MiB);
      for (let at = 0; at + 64 <= body.byteLength; at += 64 * 1024) {
        expect(wire.includes(Buffer.from(body.buffer, at, 64))).toBe(false);
      }
    }
    // After multistream-select chose TLS, the dialler's next bytes are a TLS handshake record.
    const hello = both[0]!.indexOf("/tls/1.0.0\n") + "/tls/1.0.0\n".length;
    const afterSelect = both[0]!.subarray(hello);
    expect(afterSelect[0]).toBe(0x16);
  });

  it("refuses a peer whose certificate is not the key the dialler asked for", async () => {
    const [a, b, c] = [await host(), await host(), await host()];
    const wrongPeer = multiaddr(`/ip4/127.0.0.1/tcp/${tcpPort(b)}/p2p/${c.peerId}`);
    const err = await a.dial(wrongPeer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostError);
    expect((err as HostError).code).toBe("DIAL_FAILED");
    expect(a.peers()).toHaveLength(0);
    // Both ends are still healthy.
    await a.dial(b.addresses()[0]!);
    expect(await a.request(b.peerId, ECHO, Uint8Array.of(7))).toEqual(Uint8Array.of(7));
  });

  it("a connection aborted in the middle of a response fails the request, and the host goes on", async () => {
    const [a, b] = [await host(), await host()];
    await b.handle(
      "/test/big/1",
      () => {
        // Cut the connection once the response has started.
        setTimeout(() => {
          for (const connection of b.libp2p.getConnections()) connection.abort(new Error("gone"));
        }, 0);
        return new Uint8Array(64 * MiB);
      },
      { maxResponseBytes: 64 * MiB },
    );
    await a.dial(b.addresses()[0]!);
    const err = await a
      .request(b.peerId, "/test/big/1", Uint8Array.of(1), { maxResponseBytes: 64 * MiB })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostError);
    expect((err as HostError).code).toBe("STREAM_FAILED");
    await a.dial(b.addresses()[0]!);
    expect(await a.request(b.peerId, ECHO, Uint8Array.of(8))).toEqual(Uint8Array.of(8));
  });
});

/**
 * Whether JavaScript still reads the connection's TCP socket. The host's TLS exists to make this false:
 * node:tls then reads it natively (when @libp2p/tcp's connection or socket changes shape, the host falls
 * back to @libp2p/tls, which works but is slow, and this notices).
 */
function readInJavaScript(connection: Connection): boolean {
  const socket = (connection as unknown as { maConn: { socket: Socket } }).maConn.socket;
  expect(socket).toBeInstanceOf(Socket);
  return socket.listenerCount("data") > 0;
}

function tcpPort(h: Host): number {
  return Number(
    h
      .addresses()[0]!
      .getComponents()
      .find((c) => c.name === "tcp")!.value,
  );
}

interface Tap {
  port: number;
  /** Bytes from the dialler to the listener, as they passed. */
  sent: Buffer[];
  received: Buffer[];
}

/** A TCP proxy on 127.0.0.1 to `target` that keeps a copy of everything it forwards. */
async function tapProxy(target: number): Promise<Tap> {
  const tap: Tap = { port: 0, sent: [], received: [] };
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = tcpConnect(target, "127.0.0.1");
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.on("data", (chunk: Buffer) => tap.sent.push(chunk));
    outbound.on("data", (chunk: Buffer) => tap.received.push(chunk));
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.unshift(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  tap.port = address.port;
  return tap;
}
