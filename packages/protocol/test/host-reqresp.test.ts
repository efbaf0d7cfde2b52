import { createHash, randomFillSync } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeepshardError } from "../src/errors.ts";
import { encodeVarint, StreamReader } from "../src/host/frames.ts";
import { createHost, type Host, HostError } from "../src/host/index.ts";

const MiB = 1 << 20;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  // One at a time: two hosts stopping at once each wait out libp2p's grace period for the other.
  for (const close of closers.splice(0).reverse()) await close();
});

async function host(): Promise<Host> {
  const h = await createHost();
  closers.push(() => h.stop());
  return h;
}

async function failure(promise: Promise<unknown>): Promise<HostError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostError);
  return err as HostError;
}

describe("request/response between two hosts", () => {
  let client: Host;
  let server: Host;
  beforeEach(async () => {
    client = await host();
    server = await host();
    await client.dial(server.addresses()[0]!);
  });

  it("moves a 64 MiB blob intact both ways and refuses one byte more", async () => {
    const limit = 64 * MiB;
    let calls = 0;
    await server.handle(
      "/test/echo/1",
      (request) => {
        calls++;
        return request;
      },
      { maxRequestBytes: limit, maxResponseBytes: limit },
    );
    const blob = randomFillSync(new Uint8Array(limit + 1));
    const exact = blob.subarray(0, limit);
    const echoed = await client.request(server.peerId, "/test/echo/1", exact, { maxResponseBytes: limit });
    expect(echoed.byteLength).toBe(limit);
    expect(sha256(echoed)).toBe(sha256(exact));

    const err = await failure(
      client.request(server.peerId, "/test/echo/1", blob, { maxResponseBytes: 2 * limit }),
    );
    expect(err.code).toBe("TOO_LARGE");
    expect(err.meta.side).toBe("remote");
    expect(calls).toBe(1);
  });

  it("refuses a response above the requester's limit from its declared length", async () => {
    const blob = new Uint8Array(4 * MiB);
    await server.handle("/test/blob/1", () => blob, { maxResponseBytes: blob.byteLength });
    const err = await failure(
      client.request(server.peerId, "/test/blob/1", new Uint8Array(0), {
        maxResponseBytes: blob.byteLength - 1,
      }),
    );
    expect(err.code).toBe("TOO_LARGE");
    expect(err.meta).toMatchObject({ side: "local", declared: blob.byteLength, limit: blob.byteLength - 1 });
    // The same host answers the next request normally.
    const ok = await client.request(server.peerId, "/test/blob/1", new Uint8Array(0), {
      maxResponseBytes: blob.byteLength,
    });
    expect(ok.byteLength).toBe(blob.byteLength);
  });

  it("never sends a response above the handler's own limit", async () => {
    await server.handle("/test/oversized/1", () => new Uint8Array(2048), { maxResponseBytes: 1024 });
    const err = await failure(client.request(server.peerId, "/test/oversized/1", new Uint8Array(1)));
    expect(err.code).toBe("TOO_LARGE");
    expect(err.meta.side).toBe("remote");
  });

  it("gives TIMEOUT when the deadline passes, and the handler sees its signal abort", async () => {
    let handlerAborted: Promise<unknown> = Promise.resolve();
    await server.handle("/test/slow/1", (_request, { signal }) => {
      handlerAborted = new Promise((resolve) =>
        signal.addEventListener("abort", () => resolve(signal.reason)),
      );
      return new Promise<Uint8Array>(() => {});
    });
    const t0 = Date.now();
    const err = await failure(
      client.request(server.peerId, "/test/slow/1", new Uint8Array(1), { timeoutMs: 200 }),
    );
    expect(err.code).toBe("TIMEOUT");
    expect(Date.now() - t0).toBeLessThan(5_000);
    const reason = await handlerAborted;
    expect(reason).toBeInstanceOf(HostError);
  });

  it("gives TIMEOUT for an AbortSignal.timeout and ABORTED for a plain abort", async () => {
    await server.handle("/test/never/1", () => new Promise<Uint8Array>(() => {}));
    const timedOut = await failure(
      client.request(server.peerId, "/test/never/1", new Uint8Array(1), { signal: AbortSignal.timeout(100) }),
    );
    expect(timedOut.code).toBe("TIMEOUT");
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const aborted = await failure(
      client.request(server.peerId, "/test/never/1", new Uint8Array(1), { signal: controller.signal }),
    );
    expect(aborted.code).toBe("ABORTED");
  });

  it("turns a handler's error into REMOTE_ERROR with the remote code and message", async () => {
    await server.handle("/test/fail/1", () => {
      throw new DeepshardError("NOT_FOUND", "no such blob");
    });
    const err = await failure(client.request(server.peerId, "/test/fail/1", new Uint8Array(1)));
    expect(err.code).toBe("REMOTE_ERROR");
    expect(err.meta).toMatchObject({ remoteCode: "NOT_FOUND", remoteMessage: "no such blob" });

    await server.handle("/test/crash/1", () => {
      throw new Error("secret internal detail");
    });
    const crash = await failure(client.request(server.peerId, "/test/crash/1", new Uint8Array(1)));
    expect(crash.code).toBe("REMOTE_ERROR");
    expect(crash.meta.remoteCode).toBe("INTERNAL");
    expect(crash.message).not.toContain("secret");
  });

  it("reports PROTOCOL_UNSUPPORTED and DIAL_FAILED", async () => {
    const unsupported = await failure(client.request(server.peerId, "/test/missing/1", new Uint8Array(1)));
    expect(unsupported.code).toBe("PROTOCOL_UNSUPPORTED");

    const gone = await host();
    const address = gone.addresses()[0]!;
    await gone.stop();
    const dial = await failure(
      client.request(address, "/test/missing/1", new Uint8Array(1), { timeoutMs: 5_000 }),
    );
    expect(dial.code).toBe("DIAL_FAILED");
  });

  it("serves many concurrent requests on one connection", async () => {
    await server.handle("/test/double/1", (request) => request.map((b) => b * 2));
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.request(server.peerId, "/test/double/1", Uint8Array.of(i))),
    );
    expect(answers.map((a) => a[0])).toEqual(Array.from({ length: 20 }, (_, i) => i * 2));
  });

  it("drops a malformed length prefix without calling the handler", async () => {
    let calls = 0;
    await server.handle("/test/strict/1", () => {
      calls++;
      return new Uint8Array(0);
    });
    const stream = await client.libp2p.dialProtocol(server.peerId, "/test/strict/1");
    const reader = new StreamReader(stream);
    stream.send(new Uint8Array(9).fill(0xff));
    const err = await failure(reader.readByte(AbortSignal.timeout(5_000)));
    expect(err.code).toBe("STREAM_FAILED");
    reader.detach();
    expect(calls).toBe(0);
  });

  it("turns a malformed response into STREAM_FAILED", async () => {
    await server.libp2p.handle("/test/garbage/1", (stream) => {
      stream.send(Uint8Array.of(7, ...encodeVarint(3), 1, 2, 3));
      void stream.close();
    });
    const err = await failure(client.request(server.peerId, "/test/garbage/1", new Uint8Array(1)));
    expect(err.code).toBe("STREAM_FAILED");
  });

  it("refuses requests once stopped", async () => {
    await client.stop();
    const err = await failure(client.request(server.peerId, "/test/echo/1", new Uint8Array(1)));
    expect(err.code).toBe("NOT_RUNNING");
  });
});

describe("length prefixes", () => {
  it("encode as unsigned LEB128", () => {
    expect([...encodeVarint(0)]).toEqual([0]);
    expect([...encodeVarint(127)]).toEqual([127]);
    expect([...encodeVarint(128)]).toEqual([0x80, 1]);
    expect([...encodeVarint(300)]).toEqual([0xac, 0x02]);
    expect([...encodeVarint(2 ** 53 - 1)]).toHaveLength(8);
    expect(() => encodeVarint(-1)).toThrow(RangeError);
    expect(() => encodeVarint(2 ** 53)).toThrow(RangeError);
  });
});
