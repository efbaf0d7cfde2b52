/**
 * A small client of the node's HTTP API, for the CLI and for scripts:
 *
 *   import { DeepshardClient } from "@deepshard/cli";
 *   const client = new DeepshardClient("http://127.0.0.1:26680");
 *   const { hash } = await client.transfer(secretKey, "ds1…", 100n, { wait: true });
 *   await client.close();
 *
 * Amounts come back as bigints. A refusal by the node is a ClientError carrying the node's error
 * code (TX_BAD_NONCE, TX_INSUFFICIENT_FUNDS, …) and the HTTP status.
 */
import {
  DeepshardError,
  encodeAddress,
  encodeTx,
  parseAddress,
  publicKeyFromSecret,
  type SignedTx,
} from "@deepshard/protocol";
import { Agent, request } from "undici";
import { signTx, type TxBody } from "./tx.ts";

export type ClientErrorCode = string;

export class ClientError extends DeepshardError<ClientErrorCode> {
  override name = "ClientError";
  /** The HTTP status; 0 when the node could not be reached. */
  readonly status: number;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: string | undefined; cause?: unknown } = {},
  ) {
    super(code, message, { ...options, meta: { status } });
    this.status = status;
  }
}

export interface NodeStatus {
  chainId: string;
  version: string;
  address: string;
  peerId: string;
  roles: string[];
  height: number;
  appHash: string;
  lastBlockHash: string;
  time: number;
  consensus: { height: number; round: number; step: string };
  peers: number;
  listen: string[];
  mempool: { txs: number; bytes: number };
  validators: number;
  minFee: bigint;
  price: bigint;
  canonicalWeightsId: string;
}

export interface AccountInfo {
  address: string;
  balance: bigint;
  nonce: bigint;
  nextNonce: bigint;
  bonded: bigint;
  unbonding: bigint;
  validator: {
    active: boolean;
    power: bigint;
    jailedUntil: number;
    tombstoned: boolean;
    missed: number;
  } | null;
}

export interface ValidatorSetInfo {
  height: number;
  totalPower: bigint;
  validators: { address: string; power: bigint }[];
}

export interface SupplyInfo {
  height: number;
  genesis: bigint;
  minted: bigint;
  burned: bigint;
  balances: bigint;
  bonded: bigint;
  unbonding: bigint;
  escrowed: bigint;
  expected: bigint;
  actual: bigint;
  holds: boolean;
}

export interface BlockTx {
  hash: string;
  index: number;
  /** Absent for blocks committed before the node's last restart. */
  code?: number;
  ok?: boolean;
  log?: string;
  type: string;
  sender: string;
  nonce: string;
  fee: string;
  [field: string]: unknown;
}

export interface BlockInfo {
  height: number;
  hash: string;
  chainId: string;
  time: number;
  prevHash: string;
  txRoot: string;
  appHash: string;
  proposer: string;
  lastCommit: { round: number; signatures: number } | null;
  txs: BlockTx[];
}

export type TxInfo =
  | { status: "pending"; hash: string }
  | ({ status: "committed"; height: number } & BlockTx);

export interface SendOptions {
  /** Default: the chain's minimum fee. */
  fee?: bigint | undefined;
  /** Wait until the transaction is in a block; a failed transaction is then a ClientError. */
  wait?: boolean | undefined;
  /** How long to wait for inclusion (default 60 s). */
  timeoutMs?: number | undefined;
}

export interface SendResult {
  hash: string;
  /** Set when waited for. */
  height?: number;
  code?: number;
  log?: string;
}

export interface ClientOptions {
  /** Per request (default 30 s). */
  timeoutMs?: number;
}

const AMOUNT_FIELDS = new Set([
  "balance",
  "nonce",
  "nextNonce",
  "bonded",
  "unbonding",
  "power",
  "totalPower",
  "minFee",
  "price",
  "genesis",
  "minted",
  "burned",
  "balances",
  "escrowed",
  "expected",
  "actual",
]);

/** The node sends amounts as decimal strings; these fields become bigints. */
function reviveAmounts(key: string, value: unknown): unknown {
  return AMOUNT_FIELDS.has(key) && typeof value === "string" && /^[0-9]+$/.test(value)
    ? BigInt(value)
    : value;
}

export class DeepshardClient {
  readonly url: string;
  readonly #node: NodeEndpoint;

  constructor(url: string, options: ClientOptions = {}) {
    this.#node = nodeEndpoint(url, options.timeoutMs ?? 30_000, 8);
    this.url = this.#node.url;
  }

  status(): Promise<NodeStatus> {
    return this.#get("/status");
  }

  account(address: string): Promise<AccountInfo> {
    return this.#get(`/accounts/${encodeURIComponent(address)}`);
  }

  validators(): Promise<ValidatorSetInfo> {
    return this.#get("/validators");
  }

  supply(): Promise<SupplyInfo> {
    return this.#get("/supply");
  }

  block(height: number | "latest"): Promise<BlockInfo> {
    return this.#get(`/blocks/${height}`);
  }

  tx(hash: string): Promise<TxInfo> {
    return this.#get(`/tx/${encodeURIComponent(hash)}`);
  }

  /** The Prometheus text of /metrics. */
  async metrics(): Promise<string> {
    const res = await this.#request("GET", "/metrics");
    return res.body.text();
  }

  /** Posts a signed transaction (or its canonical bytes) to the mempool; returns its hash. */
  async submit(tx: SignedTx | Uint8Array): Promise<{ hash: string }> {
    const bytes = tx instanceof Uint8Array ? tx : encodeTx(tx);
    return this.#call("POST", "/tx", JSON.stringify({ tx: Buffer.from(bytes).toString("hex") }));
  }

  /** Polls until the transaction is committed; rejects after `timeoutMs`. */
  async waitForTx(hash: string, timeoutMs = 60_000): Promise<TxInfo & { status: "committed" }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const info = await this.tx(hash);
        if (info.status === "committed") return info;
      } catch (err) {
        if (!(err instanceof ClientError && err.status === 404)) throw err;
      }
      if (Date.now() > deadline) {
        throw new ClientError(
          0,
          "TX_TIMEOUT",
          `transaction ${hash} was not included within ${timeoutMs} ms`,
          {
            details: "it may still be pending, or was dropped from the mempool",
          },
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Signs `body` with `secretKey` for the node's chain, with the sender's next nonce (pooled
   * transactions counted) and the minimum fee unless given, submits it, and optionally waits.
   */
  async send(secretKey: Uint8Array, body: TxBody, options: SendOptions = {}): Promise<SendResult> {
    const [status, account] = await Promise.all([
      this.status(),
      this.account(encodeAddress(publicKeyFromSecret(secretKey))),
    ]);
    const tx = signTx(secretKey, body, {
      chainId: status.chainId,
      nonce: account.nextNonce,
      fee: options.fee ?? status.minFee,
    });
    const { hash } = await this.submit(tx);
    if (!options.wait) return { hash };
    const done = await this.waitForTx(hash, options.timeoutMs);
    if (done.code !== undefined && done.code !== 0) {
      throw new ClientError(
        200,
        done.log || "TX_FAILED",
        `transaction ${hash} failed in block ${done.height}`,
        {
          details: done.log,
        },
      );
    }
    return {
      hash,
      height: done.height,
      ...(done.code === undefined ? {} : { code: done.code, log: done.log ?? "" }),
    };
  }

  transfer(secretKey: Uint8Array, to: string, amount: bigint, options?: SendOptions): Promise<SendResult> {
    return this.send(secretKey, { type: "transfer", to: parseAddress(to), amount }, options);
  }

  bond(secretKey: Uint8Array, amount: bigint, options?: SendOptions): Promise<SendResult> {
    return this.send(secretKey, { type: "bond", amount }, options);
  }

  unbond(secretKey: Uint8Array, amount: bigint, options?: SendOptions): Promise<SendResult> {
    return this.send(secretKey, { type: "unbond", amount }, options);
  }

  async close(): Promise<void> {
    await this.#node.agent.close();
  }

  async #get<T>(path: string): Promise<T> {
    return this.#call("GET", path);
  }

  #call<T>(method: "GET" | "POST", path: string, body?: string): Promise<T> {
    return callNode(this.#node, method, path, { body, reviver: reviveAmounts });
  }

  #request(method: "GET" | "POST", path: string, body?: string) {
    return requestNode(this.#node, method, path, { body });
  }
}

/** What the HTTP helpers need of a client: where its node is, its connection pool, its deadline. */
export interface NodeEndpoint {
  url: string;
  agent: Agent;
  timeoutMs: number;
}

/** The endpoint of the node API at `url` (checked: an http(s) URL), with its own connection pool. */
export function nodeEndpoint(url: string, timeoutMs: number, connections: number): NodeEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ClientError(0, "BAD_API_URL", `not a URL: ${url}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new ClientError(0, "BAD_API_URL", `the node API is http://…, got ${url}`);
  }
  return { url: parsed.origin, agent: new Agent({ keepAliveTimeout: 1_000, connections }), timeoutMs };
}

/** The `error` object of the node's JSON error bodies. */
export interface NodeErrorBody {
  code?: string;
  message?: string;
  details?: string;
}

export interface NodeCallOptions {
  /** JSON text, or raw bytes (sent as application/octet-stream). */
  body?: string | Uint8Array | undefined;
  reviver?: ((key: string, value: unknown) => unknown) | undefined;
  /** A clearer error for a refusal this client understands (e.g. a role the node does not run). */
  explain?: ((status: number, error: NodeErrorBody, path: string) => ClientError | undefined) | undefined;
}

/**
 * One request to a node's API, shared by every client: an unreachable node and an HTTP error become
 * ClientErrors carrying the node's own code and message.
 */
export async function requestNode(
  node: NodeEndpoint,
  method: "GET" | "POST",
  path: string,
  options: NodeCallOptions = {},
): Promise<Awaited<ReturnType<typeof request>>> {
  const { body } = options;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${node.url}${path}`, {
      method,
      dispatcher: node.agent,
      headersTimeout: node.timeoutMs,
      bodyTimeout: node.timeoutMs,
      ...(body === undefined
        ? {}
        : {
            body,
            headers: {
              "content-type": typeof body === "string" ? "application/json" : "application/octet-stream",
            },
          }),
    });
  } catch (cause) {
    throw new ClientError(0, "NODE_UNREACHABLE", `cannot reach the node at ${node.url}`, {
      details: "is `deepshard node start` running? pass --api <url> or set DEEPSHARD_API",
      cause,
    });
  }
  if (res.statusCode >= 400) {
    const text = await res.body.text();
    let error: NodeErrorBody = {};
    try {
      error = (JSON.parse(text) as { error?: NodeErrorBody }).error ?? {};
    } catch {
      // Not our node, or a proxy: report the status.
    }
    throw (
      options.explain?.(res.statusCode, error, path) ??
      new ClientError(
        res.statusCode,
        error.code ?? `HTTP_${res.statusCode}`,
        error.message ?? `the node answered ${method} ${path} with HTTP ${res.statusCode}`,
        error.details ? { details: error.details } : {},
      )
    );
  }
  return res;
}

/** `requestNode`, then the JSON answer (amount fields revived by `reviver`). */
export async function callNode<T>(
  node: NodeEndpoint,
  method: "GET" | "POST",
  path: string,
  options: NodeCallOptions = {},
): Promise<T> {
  const res = await requestNode(node, method, path, options);
  const text = await res.body.text();
  try {
    return JSON.parse(text, options.reviver) as T;
  } catch (cause) {
    throw new ClientError(res.statusCode, "BAD_RESPONSE", `the node answered ${path} with invalid JSON`, {
      cause,
    });
  }
}
