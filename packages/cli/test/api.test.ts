import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeTx, generateKeyPair, parseAddress, type SignedTx } from "@deepshard/protocol";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientError, DeepshardClient } from "../src/node/client.ts";
import { Daemon } from "../src/node/daemon.ts";
import { createLogger } from "../src/node/logger.ts";
import type { RoleContext, RoleService } from "../src/node/service.ts";
import { signTx } from "../src/node/tx.ts";
import { makeNetwork, type TestNetwork, USER_BALANCE, until } from "./node-fixture.ts";

let dir: string;
let net: TestNetwork;
let daemon: Daemon;
let client: DeepshardClient;

/** A role service as the role engineers will write them: routes of its own, transactions with the node key. */
class EchoRole implements RoleService {
  readonly name = "informant";
  ctx: RoleContext | undefined;
  stopped = false;

  async start(ctx: RoleContext): Promise<void> {
    this.ctx = ctx;
    ctx.api.route("GET", "/informant/whoami", () => ({ address: ctx.account.address }));
    ctx.api.route("POST", "/informant/tip", async (req) => {
      const { to } = (await req.json()) as { to: string };
      const hash = await ctx.send({ type: "transfer", to: parseAddress(to), amount: 1n });
      return { hash: Buffer.from(hash).toString("hex") };
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }
}
const role = new EchoRole();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "deepshard-api-"));
  net = await makeNetwork(dir);
  daemon = await Daemon.start({
    paths: net.paths,
    config: { ...net.config, roles: ["validator", "informant"] },
    secretKey: net.node.secretKey,
    logger: createLogger("silent"),
    roles: { informant: () => role },
  });
  client = new DeepshardClient(daemon.apiUrl);
  await until(() => daemon.height >= 1);
});

afterAll(async () => {
  await client?.close();
  await daemon?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function post(path: string, body: string | Buffer, contentType = "application/json") {
  const res = await request(`${daemon.apiUrl}${path}`, {
    method: "POST",
    body,
    headers: { "content-type": contentType },
  });
  const text = await res.body.text();
  return { status: res.statusCode, type: res.headers["content-type"], json: JSON.parse(text) };
}

async function get(path: string, method: "GET" | "DELETE" = "GET") {
  const res = await request(`${daemon.apiUrl}${path}`, { method });
  const text = await res.body.text();
  return { status: res.statusCode, type: res.headers["content-type"], json: JSON.parse(text) };
}

/** Sends raw bytes over TCP and returns the raw answer. */
function raw(bytes: string): Promise<string> {
  const { port } = new URL(daemon.apiUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), "127.0.0.1");
    let answer = "";
    socket.on("data", (d) => {
      answer += d.toString();
    });
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
    socket.write(bytes);
    socket.setTimeout(5_000, () => socket.destroy(new Error("no answer")));
  });
}

function transfer(overrides: { chainId?: string; nonce?: bigint; amount?: bigint } = {}): SignedTx {
  return signTx(
    net.user.secretKey,
    { type: "transfer", to: net.node.publicKey, amount: overrides.amount ?? 10n },
    { chainId: overrides.chainId ?? net.config.chainId, nonce: overrides.nonce ?? 1n, fee: 1n },
  );
}

describe("the node API", () => {
  it("reports status, accounts, validators and the supply", async () => {
    const status = await client.status();
    expect(status.chainId).toBe(net.config.chainId);
    expect(status.address).toBe(net.nodeAddress);
    expect(status.roles).toEqual(["validator", "informant"]);
    expect(status.height).toBeGreaterThanOrEqual(1);
    expect(status.appHash).toMatch(/^[0-9a-f]{64}$/);
    expect(status.minFee).toBe(1n);

    const user = await client.account(net.userAddress);
    expect(user).toMatchObject({
      balance: USER_BALANCE,
      nonce: 0n,
      nextNonce: 1n,
      bonded: 0n,
      validator: null,
    });
    const node = await client.account(net.nodeAddress);
    expect(node.bonded).toBe(100_000n);
    expect(node.validator?.active).toBe(true);

    const set = await client.validators();
    expect(set.validators).toEqual([{ address: net.nodeAddress, power: 100_000n }]);

    const supply = await client.supply();
    expect(supply.holds).toBe(true);
    expect(supply.expected).toBe(supply.actual);
    expect(supply.genesis).toBe(1_000_000n + 100_000n + USER_BALANCE);
  });

  it("takes a signed transfer into a block and reports it by hash and in the block", async () => {
    const sent = await client.transfer(net.user.secretKey, net.nodeAddress, 10n, {
      wait: true,
      timeoutMs: 15_000,
    });
    expect(sent.code).toBe(0);
    const info = await client.tx(sent.hash);
    expect(info).toMatchObject({ status: "committed", height: sent.height, ok: true, type: "transfer" });
    expect(info.status === "committed" && info.sender).toBe(net.userAddress);
    const block = await client.block(sent.height!);
    expect(block.txs.map((t) => t.hash)).toContain(sent.hash);
    expect(block.proposer).toBe(net.nodeAddress);
    const user = await client.account(net.userAddress);
    expect(user.nonce).toBe(1n);
    expect(user.balance).toBe(USER_BALANCE - 11n);
    const latest = await client.block("latest");
    expect(latest.height).toBeGreaterThanOrEqual(sent.height!);
  });

  it("streams committed blocks and transaction results as server-sent events", async () => {
    const abort = new AbortController();
    const res = await fetch(`${daemon.apiUrl}/events?types=block`, { signal: abort.signal });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    while (!/event: block\ndata: .*\n\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    abort.abort();
    const data = JSON.parse(/event: block\ndata: (.*)\n/.exec(text)![1]!);
    expect(data).toMatchObject({ type: "block", proposer: net.nodeAddress });
    expect(data.height).toBeGreaterThan(0);
    // The history lets a reconnecting client catch up on tx results it missed.
    const replay = await fetch(`${daemon.apiUrl}/events?types=tx&since=0`, {
      signal: AbortSignal.timeout(5_000),
    });
    const first = await replay.body!.getReader().read();
    await replay.body!.cancel().catch(() => {});
    expect(new TextDecoder().decode(first.value)).toMatch(/deepshard events/);
  });

  it("serves Prometheus metrics", async () => {
    const text = await client.metrics();
    const height = Number(/^deepshard_height\{[^}]*\} (\d+)$/m.exec(text)?.[1]);
    expect(height).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^deepshard_peers\{chain_id="test-net"\} 0$/m);
    expect(text).toMatch(/^deepshard_bonded_stake\{chain_id="test-net"\} 100000$/m);
    expect(text).toMatch(/^deepshard_consensus_step\{[^}]*\} [0-3]$/m);
    expect(text).toMatch(/^deepshard_txs_committed_total\{[^}]*outcome="ok"[^}]*\} [1-9]/m);
    expect(text).toMatch(/# TYPE deepshard_chunk_transfers_total counter/);
    expect(text).toMatch(/^deepshard_served_total\{what="chunk",chain_id="test-net"\} 0$/m);
    expect(text).toMatch(/^deepshard_serve_refusals_total\{reason="no_license",chain_id="test-net"\} 0$/m);
  });

  it("refuses malformed, forged, foreign and oversized transactions with JSON errors, writing nothing", async () => {
    const before = await client.account(net.userAddress);
    const good = encodeTx(transfer({ nonce: before.nextNonce }));

    const cases: [string | Buffer, string, number, string][] = [
      [JSON.stringify({ tx: "zz-not-hex" }), "application/json", 400, "TX_MALFORMED"],
      [JSON.stringify({ tx: Buffer.alloc(64, 7).toString("hex") }), "application/json", 400, "TX_MALFORMED"],
      [JSON.stringify({ tx: "" }), "application/json", 400, "TX_MALFORMED"],
      [JSON.stringify({ nope: 1 }), "application/json", 400, "BAD_REQUEST"],
      ["{not json", "application/json", 400, "BAD_JSON"],
      [Buffer.from(good.subarray(0, good.length - 3)), "application/octet-stream", 400, "TX_MALFORMED"],
      [Buffer.alloc(1_000_000, 1), "application/octet-stream", 413, "BODY_TOO_LARGE"],
    ];
    const forged = transfer({ nonce: before.nextNonce });
    forged.signature = Uint8Array.from(forged.signature, (b, i) => (i === 0 ? b ^ 1 : b));
    cases.push([
      JSON.stringify({ tx: Buffer.from(encodeTx(forged)).toString("base64") }),
      "application/json",
      400,
      "TX_BAD_SIGNATURE",
    ]);
    const foreign = encodeTx(transfer({ chainId: "other-net", nonce: before.nextNonce }));
    cases.push([Buffer.from(foreign), "application/octet-stream", 400, "TX_WRONG_CHAIN"]);
    const tooMuch = encodeTx(transfer({ nonce: before.nextNonce, amount: USER_BALANCE * 10n }));
    cases.push([
      JSON.stringify({ tx: `0x${Buffer.from(tooMuch).toString("hex")}` }),
      "application/json",
      400,
      "TX_INSUFFICIENT_FUNDS",
    ]);

    for (const [body, type, status, code] of cases) {
      const res = await post("/tx", body, type);
      expect([res.status, res.json.error?.code], `${code}`).toEqual([status, code]);
      expect(res.type).toMatch(/^application\/json/);
      expect(typeof res.json.error.message).toBe("string");
    }
    // A stranger's transaction is refused too: no funds, nothing pooled.
    const stranger = generateKeyPair();
    const poor = signTx(
      stranger.secretKey,
      { type: "transfer", to: net.user.publicKey, amount: 1n },
      {
        chainId: net.config.chainId,
        nonce: 1n,
        fee: 1n,
      },
    );
    await expect(client.submit(poor)).rejects.toMatchObject({ status: 400, code: "TX_INSUFFICIENT_FUNDS" });

    const after = await client.account(net.userAddress);
    expect(after.nonce).toBe(before.nonce);
    expect(after.nextNonce).toBe(before.nextNonce);
    expect((await client.status()).mempool.txs).toBe(0);
  });

  it("answers unknown paths, wrong methods and bad parameters with JSON errors", async () => {
    const cases: [string, "GET" | "DELETE", number, string][] = [
      ["/nope", "GET", 404, "NOT_FOUND"],
      ["/status", "DELETE", 405, "METHOD_NOT_ALLOWED"],
      ["/accounts/not-an-address", "GET", 400, "INVALID_ADDRESS"],
      ["/accounts/%E0%A4%A", "GET", 400, "BAD_URL"],
      ["/blocks/0", "GET", 400, "BAD_HEIGHT"],
      ["/blocks/999999999", "GET", 404, "BLOCK_NOT_FOUND"],
      ["/tx/1234", "GET", 400, "BAD_HASH"],
      [`/tx/${"0".repeat(64)}`, "GET", 404, "TX_NOT_FOUND"],
    ];
    for (const [path, method, status, code] of cases) {
      const res = await get(path, method);
      expect([res.status, res.json.error?.code], path).toEqual([status, code]);
      expect(res.type).toMatch(/^application\/json/);
    }
    await expect(client.block(999_999_999)).rejects.toBeInstanceOf(ClientError);
  });

  it("refuses requests addressed to other hosts and malformed HTTP, and keeps running", async () => {
    const rebound = await raw("GET /status HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n");
    expect(rebound).toMatch(/^HTTP\/1.1 403/);
    expect(rebound).toMatch(/"code":"FORBIDDEN_HOST"/);
    const garbage = await raw("NOT HTTP AT ALL\r\n\r\n");
    expect(garbage).toMatch(/^HTTP\/1.1 400/);
    expect(garbage).toMatch(/"code":"BAD_HTTP"/);
    const huge = await raw(`GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1.1 431/);

    const height = daemon.height;
    await until(() => daemon.height > height);
    expect((await client.status()).height).toBeGreaterThan(height);
  });

  it("runs role services: their routes answer and they send transactions with the node key", async () => {
    expect(role.ctx?.config.roles).toContain("informant");
    expect(role.ctx?.stores.blobs.dir).toBe(net.paths.root);
    expect(role.ctx?.stores.blobService.protocols.length).toBe(2);
    expect((await get("/informant/whoami")).json).toEqual({ address: net.nodeAddress });
    const before = await client.account(net.nodeAddress);
    const tipped = await post("/informant/tip", JSON.stringify({ to: net.userAddress }));
    expect(tipped.status).toBe(200);
    const done = await client.waitForTx(tipped.json.hash, 15_000);
    expect(done).toMatchObject({ ok: true, sender: net.nodeAddress, type: "transfer" });
    expect((await client.account(net.nodeAddress)).nonce).toBe(before.nonce + 1n);
  });
});
