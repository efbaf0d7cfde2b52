/**
 * The node's own API routes: status, accounts, validators, supply, blocks, transactions (read and
 * submit), the event stream and the metrics. Role services add theirs through `ApiRoutes`.
 */
import { checkSupply, type LedgerState, supplyBreakdown } from "@deepshard/ledger";
import {
  AddressError,
  CodecError,
  decodeTx,
  encodeAddress,
  MAX_TX_BYTES,
  parseAddress,
  type SignedTx,
  txHash,
} from "@deepshard/protocol";
import type { Host } from "@deepshard/protocol/host";
import { jsonReplacer } from "../util/output.ts";
import { ApiError, type ApiRequest, type ApiServer, Reply, STREAMED } from "./api.ts";
import type { NodeConfig } from "./config.ts";
import type { NodeEvents, StampedEvent } from "./events.ts";
import type { NodeMetrics } from "./metrics.ts";
import type { NodeLedger, StoredBlockInfo, TxResult } from "./service.ts";
import { type NodeAccount, txView } from "./tx.ts";

export const VERSION = "0.1.0";
/** A slow /events reader is cut off once this much is queued for it. */
const MAX_SSE_BUFFER = 1024 * 1024;
const SSE_HEARTBEAT_MS = 15_000;

export interface RouteDeps {
  config: NodeConfig;
  account: NodeAccount;
  host: Host;
  ledger: NodeLedger;
  events: NodeEvents;
  metrics: NodeMetrics;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

function meta(state: LedgerState) {
  return state.tables.meta.get("meta")!;
}

/** The JSON view of an account: balance, nonce and its validator record (all amounts as strings). */
export function accountView(state: LedgerState, address: string, nextNonce?: (key: Uint8Array) => bigint) {
  let key: Uint8Array;
  try {
    key = parseAddress(address);
  } catch (err) {
    if (err instanceof AddressError)
      throw new ApiError(400, err.code, err.shortMessage, { details: err.details });
    throw err;
  }
  const id = hex(key);
  const account = state.tables.accounts.get(id);
  const validator = state.tables.validators.get(id);
  let unbonding = 0n;
  for (const u of state.tables.unbonding.values()) if (u.owner === id) unbonding += u.amount;
  const active = meta(state).validators.find((v) => v.address === id);
  return {
    address: encodeAddress(key),
    balance: account?.balance ?? 0n,
    nonce: account?.nonce ?? 0n,
    /** What the next transaction should carry, counting the sender's pooled ones. */
    nextNonce: nextNonce ? nextNonce(key) : (account?.nonce ?? 0n) + 1n,
    bonded: validator?.bonded ?? 0n,
    unbonding,
    validator: validator
      ? {
          active: active !== undefined,
          power: active?.power ?? 0n,
          jailedUntil: validator.jailedUntil,
          tombstoned: validator.tombstoned,
          missed: validator.missed,
        }
      : null,
  };
}

function blockView(info: StoredBlockInfo) {
  const h = info.block.header;
  return {
    height: info.height,
    hash: hex(info.hash),
    chainId: h.chainId,
    time: h.time,
    prevHash: hex(h.prevHash),
    txRoot: hex(h.txRoot),
    appHash: hex(h.appHash),
    proposer: encodeAddress(h.proposer),
    lastCommit: info.block.lastCommit
      ? { round: info.block.lastCommit.round, signatures: info.block.lastCommit.signatures.length }
      : null,
    txs: info.block.txs.map((tx, index) => txEntry(tx, index, info.txResults?.[index])),
  };
}

function txEntry(tx: SignedTx, index: number, result: TxResult | undefined) {
  return {
    hash: hex(txHash(tx)),
    index,
    ...(result ? { code: result.code, ok: result.code === 0, log: result.log } : {}),
    ...txView(tx),
  };
}

/** Hex (optionally 0x-prefixed) or base64 (standard or URL-safe). */
export function decodeTxText(text: string): Uint8Array {
  const trimmed = text.trim();
  const maxChars = MAX_TX_BYTES * 2 + 2;
  if (trimmed.length === 0) throw new ApiError(400, "TX_MALFORMED", "the transaction is empty");
  if (trimmed.length > maxChars) {
    throw new ApiError(400, "TX_TOO_LARGE", `a transaction has at most ${MAX_TX_BYTES} bytes`);
  }
  const hexBody = trimmed.startsWith("0x") ? trimmed.slice(2) : trimmed;
  if (/^[0-9a-fA-F]*$/.test(hexBody) && hexBody.length % 2 === 0) return Buffer.from(hexBody, "hex");
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) return Buffer.from(trimmed, "base64");
  throw new ApiError(400, "TX_MALFORMED", "the transaction is neither hex nor base64");
}

/** Decodes and checks a posted transaction: canonical bytes, this chain, a valid signature. */
export function parsePostedTx(
  bytes: Uint8Array,
  chainId: string,
  verifySignature: (tx: SignedTx) => boolean,
): SignedTx {
  let tx: SignedTx;
  try {
    tx = decodeTx(bytes);
  } catch (err) {
    if (err instanceof CodecError) {
      throw new ApiError(400, "TX_MALFORMED", `malformed transaction: ${err.shortMessage}`, {
        details: err.details,
      });
    }
    throw err;
  }
  if (tx.payload.chainId !== chainId) {
    throw new ApiError(400, "TX_WRONG_CHAIN", `the transaction is for chain "${tx.payload.chainId}"`, {
      details: `this node runs "${chainId}"`,
    });
  }
  if (!verifySignature(tx)) {
    throw new ApiError(400, "TX_BAD_SIGNATURE", "the signature does not verify for the signer and payload");
  }
  return tx;
}

async function readPostedTx(req: ApiRequest): Promise<Uint8Array> {
  const type = req.raw.headers["content-type"] ?? "";
  if (type.startsWith("application/octet-stream")) return req.bytes();
  const body = await req.json();
  const text = typeof body === "string" ? body : (body as { tx?: unknown } | null)?.tx;
  if (typeof text !== "string") {
    throw new ApiError(400, "BAD_REQUEST", 'expected {"tx": "<hex or base64 of the signed transaction>"}');
  }
  return decodeTxText(text);
}

function parseHeight(text: string, latest: number): number {
  if (text === "latest") return latest;
  if (!/^[0-9]{1,15}$/.test(text) || Number(text) < 1) {
    throw new ApiError(400, "BAD_HEIGHT", "a height is a whole number from 1 (or `latest`)");
  }
  return Number(text);
}

function parseHash(text: string): Uint8Array {
  const body = text.startsWith("0x") ? text.slice(2) : text;
  if (!/^[0-9a-fA-F]{64}$/.test(body)) throw new ApiError(400, "BAD_HASH", "a hash is 64 hex digits");
  return Buffer.from(body, "hex");
}

/** Refusals of the mempool that mean "try later" rather than "this transaction is wrong". */
const BUSY = new Set(["MEMPOOL_FULL", "SENDER_FULL"]);

export function registerNodeRoutes(api: ApiServer, deps: RouteDeps): void {
  const { ledger, host, events, metrics, config, account } = deps;

  api.route("GET", "/status", () => {
    const state = ledger.state();
    const m = meta(state);
    const params = state.tables.params.get("params")!;
    const pool = ledger.mempool();
    return {
      chainId: ledger.chainId,
      version: VERSION,
      address: account.address,
      peerId: host.peerId.toString(),
      roles: config.roles,
      height: m.height,
      appHash: hex(state.root),
      lastBlockHash: m.lastBlockHash,
      time: m.time,
      consensus: ledger.consensus(),
      peers: host.peers().length,
      listen: host.addresses().map(String),
      mempool: { txs: pool.txs, bytes: pool.bytes },
      validators: m.validators.length,
      minFee: params.minFee,
      price: m.price,
      canonicalWeightsId: m.canonicalWeightsId,
    };
  });

  api.route("GET", "/accounts/:address", (req) =>
    accountView(ledger.state(), req.params.address!, (k) => ledger.nextNonce(k)),
  );

  api.route("GET", "/validators", () => {
    const state = ledger.state();
    const set = meta(state).validators;
    let total = 0n;
    for (const v of set) total += v.power;
    return {
      height: meta(state).height,
      totalPower: total,
      validators: set.map((v) => ({ address: encodeAddress(Buffer.from(v.address, "hex")), power: v.power })),
    };
  });

  api.route("GET", "/supply", () => {
    const state = ledger.state();
    const s = supplyBreakdown(state);
    const expected = s.genesis + s.minted - s.burned;
    const actual = s.balances + s.bonded + s.unbonding + s.escrowed;
    let holds = true;
    try {
      checkSupply(state);
    } catch {
      holds = false;
    }
    return { height: meta(state).height, ...s, expected, actual, holds };
  });

  api.route(
    "POST",
    "/tx",
    async (req) => {
      const tx = parsePostedTx(await readPostedTx(req), ledger.chainId, (t) => ledger.verifySignature(t));
      try {
        await ledger.submit(tx);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (err instanceof ApiError || typeof code !== "string") throw err;
        const e = err as Error & { shortMessage?: string; details?: string };
        throw new ApiError(BUSY.has(code) ? 503 : 400, code, e.shortMessage ?? e.message, {
          details: e.details,
        });
      }
      return new Reply(202, { hash: hex(txHash(tx)) });
    },
    { maxBodyBytes: MAX_TX_BYTES * 3 },
  );

  api.route("GET", "/blocks/:height", async (req) => {
    const height = parseHeight(req.params.height!, meta(ledger.state()).height);
    const info = await ledger.block(height);
    if (!info) throw new ApiError(404, "BLOCK_NOT_FOUND", `no block at height ${height}`);
    return blockView(info);
  });

  api.route("GET", "/tx/:hash", async (req) => {
    const hash = parseHash(req.params.hash!);
    const where = await ledger.findTx(hash);
    if (where) {
      const info = await ledger.block(where.height);
      const tx = info?.block.txs[where.index];
      if (info && tx) {
        return {
          status: "committed",
          height: where.height,
          ...txEntry(tx, where.index, info.txResults?.[where.index]),
        };
      }
    }
    if (ledger.mempool().has(hash)) return { status: "pending", hash: hex(hash) };
    throw new ApiError(404, "TX_NOT_FOUND", `no transaction ${hex(hash)} committed or pending`);
  });

  api.route("GET", "/events", (req) => {
    const res = req.res;
    const types = req.query.get("types")?.split(",").filter(Boolean);
    const after = Number(req.raw.headers["last-event-id"] ?? req.query.get("since") ?? Number.NaN);
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
    });
    res.write(": deepshard events\n\n");
    const send = ({ id, event }: StampedEvent) => {
      if (types && !types.includes(event.type)) return;
      if (res.writableLength > MAX_SSE_BUFFER) {
        res.end();
        return;
      }
      res.write(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event, jsonReplacer)}\n\n`);
    };
    if (Number.isSafeInteger(after)) for (const e of events.since(after)) send(e);
    const unsubscribe = events.subscribe(send);
    const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), SSE_HEARTBEAT_MS);
    heartbeat.unref();
    const end = () => {
      unsubscribe();
      clearInterval(heartbeat);
      if (!res.writableEnded) res.end();
    };
    res.on("close", end);
    req.signal.addEventListener("abort", end, { once: true });
    return STREAMED;
  });

  api.route("GET", "/metrics", async (req) => {
    const text = await metrics.text();
    req.res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
    req.res.end(text);
    return STREAMED;
  });
}
