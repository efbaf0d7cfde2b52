import { generateKeyPair } from "@libp2p/crypto/keys";
import type { PeerId } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import type { Multiaddr } from "@multiformats/multiaddr";
import { afterEach, describe, expect, it } from "vitest";
import { DeepshardError } from "../src/errors.ts";
import { createHost, type GossipVerdict, gossipTopic, type Host, HostError } from "../src/host/index.ts";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  // One at a time: two hosts stopping at once each wait out libp2p's grace period for the other.
  for (const close of closers.splice(0).reverse()) await close();
});

async function hosts(count: number): Promise<Host[]> {
  const started: Host[] = [];
  for (let i = 0; i < count; i++) {
    const h = await createHost({ gossip: { heartbeatIntervalMs: 100 } });
    closers.push(() => h.stop());
    started.push(h);
  }
  return started;
}

/** Polls `check` every 20 ms until it holds; fails the test after `ms`. */
async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const WELL_FORMED = 0x01;
/** The application's validator for this test: a message is well formed when it starts with 0x01. */
const validate = (data: Uint8Array): GossipVerdict => (data[0] === WELL_FORMED ? "accept" : "reject");

describe("five hosts over TCP", () => {
  it("gossip crosses a line of five hosts; a malformed message reaches no handler and costs its sender", async () => {
    const line = await hosts(5);
    // A line (0-1-2-3-4), so a message only reaches the far end if every hop forwards it.
    for (let i = 0; i + 1 < line.length; i++) await line[i]!.dial(line[i + 1]!.addresses()[0]!);

    const topic = gossipTopic("testnet", "tx");
    expect(topic).toBe("/deepshard/testnet/tx/1");
    const delivered = line.map(() => [] as string[]);
    const rejectedAt = line.map(() => 0);
    line.forEach((h, i) => {
      h.subscribe(
        topic,
        (data) => {
          const verdict = validate(data);
          if (verdict === "reject") rejectedAt[i]!++;
          return verdict;
        },
        (data) => {
          delivered[i]!.push(new TextDecoder().decode(data.subarray(1)));
        },
      );
    });
    await until("the mesh along the line", () =>
      line.every((h, i) => {
        const mesh = h.meshPeers(topic);
        const neighbours = [line[i - 1], line[i + 1]].filter((n) => n !== undefined);
        return neighbours.every((n) => mesh.includes(n.peerId.toString()));
      }),
    );

    const message = (tag: number, text: string) => Uint8Array.of(tag, ...new TextEncoder().encode(text));
    await line[0]!.publish(topic, message(WELL_FORMED, "hello"));
    await until("hello at every other host", () => delivered.slice(1).every((d) => d.includes("hello")));

    // The middle host sends a malformed message to both its neighbours, then a good one behind it on
    // the same streams: once the good one has arrived everywhere, the bad one had every chance to.
    const sender = line[2]!;
    const before = [line[1]!.gossipScore(sender.peerId), line[3]!.gossipScore(sender.peerId)];
    await sender.publish(topic, message(0xff, "malformed"));
    await sender.publish(topic, message(WELL_FORMED, "after"));
    await until("the message after it", () => delivered.every((d, i) => i === 2 || d.includes("after")));

    expect(delivered.flat()).not.toContain("malformed");
    expect(rejectedAt).toEqual([0, 1, 0, 1, 0]);
    const score = (h: Host, peer: PeerId) => h.gossipScore(peer);
    await until("the sender's score to drop at both neighbours", () => {
      return score(line[1]!, sender.peerId) < 0 && score(line[3]!, sender.peerId) < 0;
    });
    expect(score(line[1]!, sender.peerId)).toBeLessThan(before[0]!);
    expect(score(line[3]!, sender.peerId)).toBeLessThan(before[1]!);
    // Well-behaved peers keep a non-negative score.
    expect(score(line[1]!, line[0]!.peerId)).toBeGreaterThanOrEqual(0);
  });

  it("treats a validator's typed error as reject and its other exceptions as ignore", async () => {
    const [a, b] = await hosts(2);
    await a!.dial(b!.addresses()[0]!);
    const topic = gossipTopic("testnet", "block");
    let delivered = 0;
    b!.subscribe(
      topic,
      (data) => {
        if (data[0] === 1) throw new DeepshardError("BAD_SIGNATURE", "bad signature");
        if (data[0] === 2) throw new Error("a bug in the validator");
        return "accept";
      },
      () => {
        delivered++;
      },
    );
    a!.subscribe(
      topic,
      () => "accept",
      () => {},
    );
    await until("the mesh", () => a!.meshPeers(topic).includes(b!.peerId.toString()));
    await a!.publish(topic, Uint8Array.of(2));
    await a!.publish(topic, Uint8Array.of(0));
    await until("the good message", () => delivered === 1);
    expect(b!.gossipScore(a!.peerId)).toBeGreaterThanOrEqual(0);
    await a!.publish(topic, Uint8Array.of(1));
    await until("the penalty", () => b!.gossipScore(a!.peerId) < 0);
    expect(delivered).toBe(1);
    expect(() =>
      b!.subscribe(
        topic,
        () => "accept",
        () => {},
      ),
    ).toThrow(HostError);
  });

  it("the gater blocks a peer at run time and unblocking lets it connect again", async () => {
    const [a, b] = await hosts(2);
    await b!.handle("/test/ping/1", (request) => request);
    await a!.dial(b!.addresses()[0]!);
    expect(await a!.request(b!.peerId, "/test/ping/1", Uint8Array.of(1))).toEqual(Uint8Array.of(1));

    a!.gater.block(b!.peerId);
    expect(a!.gater.isBlocked(b!.peerId)).toBe(true);
    await until("the connection to close", () => a!.peers().length === 0 && b!.peers().length === 0);
    const outbound = await a!.dial(b!.addresses()[0]!).catch((e: unknown) => e);
    expect(outbound).toBeInstanceOf(HostError);
    expect((outbound as HostError).code).toBe("DIAL_FAILED");
    // Inbound: `a` refuses once the handshake has named the peer, which `b` may only notice after its dial
    // returned.
    await b!.dial(a!.addresses()[0]!).catch(() => {});
    await until(
      "the inbound connection to be refused",
      () => a!.peers().length === 0 && b!.peers().length === 0,
    );
    const reverse = await b!.request(a!.peerId, "/test/ping/1", Uint8Array.of(2)).catch((e: unknown) => e);
    expect(reverse).toBeInstanceOf(HostError);
    const request = await a!.request(b!.peerId, "/test/ping/1", Uint8Array.of(2)).catch((e: unknown) => e);
    expect((request as HostError).code).toBe("DIAL_FAILED");
    expect(a!.peers()).toHaveLength(0);

    a!.gater.unblock(b!.peerId);
    await a!.dial(b!.addresses()[0]!);
    expect(await a!.request(b!.peerId, "/test/ping/1", Uint8Array.of(3))).toEqual(Uint8Array.of(3));
    expect(await a!.ping(b!.peerId)).toBeGreaterThanOrEqual(0);
  });

  it("an address policy refuses dials it does not allow", async () => {
    const [b] = await hosts(1);
    const portOf = (addr: Multiaddr | undefined) =>
      addr?.getComponents().find((c) => c.name === "tcp")?.value;
    const blockedPort = portOf(b!.addresses()[0]);
    const a = await createHost({ allow: (_peer, addr) => portOf(addr) !== blockedPort });
    closers.push(() => a.stop());
    const err = await a.dial(b!.addresses()[0]!).catch((e: unknown) => e);
    expect((err as HostError).code).toBe("DIAL_FAILED");
    a.gater.setPolicy(undefined);
    expect((await a.dial(b!.addresses()[0]!)).equals(b!.peerId)).toBe(true);
  });

  it("takes its identity from the given private key", async () => {
    const privateKey = await generateKeyPair("Ed25519");
    const h = await createHost({ privateKey });
    closers.push(() => h.stop());
    expect(h.peerId.equals(peerIdFromPrivateKey(privateKey))).toBe(true);
    expect(h.addresses()[0]!.toString()).toMatch(
      new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${h.peerId}$`),
    );
  });

  it("bootstrap peers are dialled on start", async () => {
    const [seed] = await hosts(1);
    const joiner = await createHost({ bootstrap: seed!.addresses().map(String) });
    closers.push(() => joiner.stop());
    await until("the bootstrap connection", () => joiner.peers().some((p) => p.equals(seed!.peerId)));
  });
});
