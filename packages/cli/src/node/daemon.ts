/**
 * The deepshard daemon: the ledger node (store, consensus, mempool, libp2p host), the HTTP API on
 * 127.0.0.1, metrics, the event stream, and the role services, started in that order and stopped
 * in the reverse one. The signal handling lives in the `node start` command, so tests and scripts
 * can run daemons in-process.
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DeepshardError, encodeAddress, isDeepshardError, txHash } from "@deepshard/protocol";
import { ApiServer } from "./api.ts";
import { BlobClient, BlobService, BlobStore, type CanServe, ChunkStore } from "./blobs/index.ts";
import type { NodeConfig, Role } from "./config.ts";
import { type NetworkPaths, RUNNING_FILE, type RunningNodeInfo } from "./datadir.ts";
import { NodeEvents } from "./events.ts";
import { ledgerNodeFactory } from "./ledger-node.ts";
import { createLogger, type Logger } from "./logger.ts";
import { NodeMetrics } from "./metrics.ts";
import { registerNodeRoutes } from "./routes.ts";
import type {
  CommittedBlockInfo,
  LedgerFactory,
  NodeLedger,
  NodeStores,
  RoleContext,
  RoleFactory,
  RoleService,
} from "./service.ts";
import { type NodeAccount, nodeAccount, signTx, type TxBody } from "./tx.ts";

export interface DaemonOptions {
  paths: NetworkPaths;
  config: NodeConfig;
  /** The node key (account, validator key and peer id). */
  secretKey: Uint8Array;
  logger?: Logger | undefined;
  /** How the ledger node starts; the ledger package's node by default. */
  ledger?: LedgerFactory | undefined;
  /** Services per role; a configured role without one runs only what the ledger node does for it. */
  roles?: Partial<Record<Role, RoleFactory>> | undefined;
  /**
   * Who may receive weight chunks from this node. Default: accounts holding a license to those
   * weights, and validators of the active set (they check trainers' weights).
   */
  canServe?: ((ledger: NodeLedger) => CanServe) | undefined;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

export class Daemon {
  readonly config: NodeConfig;
  readonly paths: NetworkPaths;
  readonly account: NodeAccount;
  readonly ledger: NodeLedger;
  readonly api: ApiServer;
  readonly events: NodeEvents;
  readonly metrics: NodeMetrics;
  readonly roles: readonly RoleService[];
  readonly stores: NodeStores;
  readonly #log: Logger;
  readonly #stopping: AbortController;
  readonly #offCommit: () => void;
  #stopped: Promise<boolean> | undefined;

  private constructor(parts: {
    options: DaemonOptions;
    account: NodeAccount;
    ledger: NodeLedger;
    api: ApiServer;
    events: NodeEvents;
    metrics: NodeMetrics;
    roles: RoleService[];
    stores: NodeStores;
    log: Logger;
    stopping: AbortController;
    offCommit: () => void;
  }) {
    this.config = parts.options.config;
    this.paths = parts.options.paths;
    this.account = parts.account;
    this.ledger = parts.ledger;
    this.api = parts.api;
    this.events = parts.events;
    this.metrics = parts.metrics;
    this.roles = parts.roles;
    this.stores = parts.stores;
    this.#log = parts.log;
    this.#stopping = parts.stopping;
    this.#offCommit = parts.offCommit;
  }

  /**
   * Starts every part; if one fails, the ones already started are stopped again and the error is
   * thrown (a second daemon on the same directory fails at the ledger's database, before it binds
   * any port).
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { config, paths } = options;
    const log = options.logger ?? createLogger(config.logLevel);
    const account = nodeAccount(options.secretKey);
    const events = new NodeEvents();
    const metrics = new NodeMetrics({ chain_id: config.chainId });
    const stopping = new AbortController();
    const cleanup: (() => Promise<void>)[] = [];
    try {
      const ledger = await (options.ledger ?? ledgerNodeFactory())({
        paths,
        config,
        account,
        logger: log.child("ledger"),
      });
      cleanup.push(() => ledger.stop());
      const ledgerLog = log.child("ledger");
      const offCommit = ledger.onCommit((c) => {
        ledgerLog.debug("committed", { height: c.height, txs: c.block.txs.length });
        publishCommit(c, events, metrics);
      });
      cleanup.push(async () => offCommit());
      metrics.setSampler(() => sample(ledger, account));

      const api = new ApiServer({ port: config.apiPort, logger: log.child("api"), metrics });
      registerNodeRoutes(api, { config, account, host: ledger.host, ledger, events, metrics });

      const roles: RoleService[] = [];
      const blobs = await BlobStore.open(paths.root);
      const chunks = await ChunkStore.open(paths.root);
      const blobService = await BlobService.start(ledger.host, {
        chainId: config.chainId,
        blobs,
        chunks,
        canServe: (options.canServe ?? licensedOrValidator)(ledger),
        logger: log.child("blobs"),
      });
      cleanup.push(() => blobService.stop());
      const stores: NodeStores = {
        blobs,
        chunks,
        blobService,
        blobClient: new BlobClient(ledger.host, { chainId: config.chainId, logger: log.child("blobs") }),
      };
      const { stats } = blobService;
      metrics.countFrom(
        "deepshard_served_total",
        "Blob ranges, weight chunks and manifests served to peers",
        "what",
        () => ({
          blob_range: stats.blobRequests,
          chunk: stats.chunkRequests,
          manifest: stats.manifestRequests,
        }),
      );
      metrics.countFrom(
        "deepshard_served_bytes_total",
        "Bytes of blobs and weight chunks served to peers",
        "what",
        () => ({
          blob: stats.blobBytes,
          chunk: stats.chunkBytes,
        }),
      );
      metrics.countFrom(
        "deepshard_serve_refusals_total",
        "Requests of peers this node refused, by reason",
        "reason",
        () => ({
          no_license: stats.refusedNoLicense,
          not_found: stats.refusedNotFound,
          bad_range: stats.refusedBadRange,
          busy: stats.refusedBusy,
          bad_request: stats.badRequests,
        }),
      );
      const send = async (body: TxBody, opts: { fee?: bigint } = {}): Promise<Uint8Array> => {
        const tx = signTx(account.secretKey, body, {
          chainId: config.chainId,
          nonce: ledger.nextNonce(account.publicKey),
          fee: opts.fee ?? ledger.state().tables.params.get("params")!.minFee,
        });
        await ledger.submit(tx);
        return txHash(tx);
      };
      for (const role of config.roles) {
        const factory = options.roles?.[role];
        if (!factory) {
          // The validator role is consensus, which the ledger node runs for a key in the validator set.
          if (role !== "validator") log.info("this build has no service for the role yet", { role });
          continue;
        }
        const service = factory(config);
        const ctx: RoleContext = {
          config,
          paths,
          account,
          host: ledger.host,
          ledger,
          stores,
          api,
          events,
          metrics,
          logger: log.child(service.name),
          signal: stopping.signal,
          send,
        };
        await service.start(ctx);
        roles.push(service);
        cleanup.push(() => service.stop());
      }

      await api.listen();
      cleanup.push(() => api.close());
      const info: RunningNodeInfo = {
        pid: process.pid,
        api: api.url,
        peerId: ledger.host.peerId.toString(),
        address: account.address,
        listen: ledger.host.addresses().map(String),
      };
      await writeFile(join(paths.root, RUNNING_FILE), `${JSON.stringify(info, null, 2)}\n`);
      log.info("node started", {
        chainId: config.chainId,
        height: ledger.state().tables.meta.get("meta")!.height,
        address: account.address,
        peerId: info.peerId,
        api: api.url,
        roles: config.roles.join(","),
      });
      return new Daemon({
        options,
        account,
        ledger,
        api,
        events,
        metrics,
        roles,
        stores,
        log,
        stopping,
        offCommit,
      });
    } catch (err) {
      stopping.abort();
      for (const stop of cleanup.reverse()) {
        await stop().catch((e: unknown) => log.warn("cleanup after a failed start", { error: e }));
      }
      throw err;
    }
  }

  get apiUrl(): string {
    return this.api.url;
  }

  /** The last committed height. */
  get height(): number {
    return this.ledger.state().tables.meta.get("meta")!.height;
  }

  /**
   * Stops roles, the blob service, the API and the ledger node (consensus, host, database), in that
   * order. A part that does not stop in time is left behind and the next one is stopped anyway,
   * each given at least STOP_GRACE_MS, so a hung role cannot keep the database open. Resolves true
   * when every part stopped within `deadlineMs` (default: the config's stopTimeoutMs), false
   * otherwise: the caller should then exit the process.
   */
  stop(deadlineMs = this.config.stopTimeoutMs): Promise<boolean> {
    this.#stopped ??= (async () => {
      this.#log.info("stopping");
      this.#stopping.abort();
      const steps: [string, () => Promise<void>][] = [
        ...[...this.roles]
          .reverse()
          .map((r): [string, () => Promise<void>] => [`role ${r.name}`, () => r.stop()]),
        ["blob service", () => this.stores.blobService.stop()],
        ["api", () => this.api.close()],
        [
          "ledger",
          async () => {
            this.#offCommit();
            await this.ledger.stop();
          },
        ],
        ["running file", () => rm(join(this.paths.root, RUNNING_FILE), { force: true })],
      ];
      const deadline = Date.now() + deadlineMs;
      let clean = true;
      for (const [name, step] of steps) {
        const wait = Math.max(deadline - Date.now(), STOP_GRACE_MS);
        const outcome = await within(Promise.resolve().then(step), wait);
        if (outcome === "ok") continue;
        clean = false;
        if (outcome === "timeout")
          this.#log.error(`${name} did not stop in time; going on`, { waitedMs: wait });
        else this.#log.error(`stopping ${name} failed`, { error: outcome.error });
      }
      if (clean && Date.now() <= deadline) this.#log.info("stopped");
      else this.#log.error("stopped, but not cleanly within the deadline", { deadlineMs });
      return clean && Date.now() <= deadline;
    })();
    return this.#stopped;
  }
}

/** What each part of a stopping daemon gets at least, even after the deadline passed. */
const STOP_GRACE_MS = 500;

async function within(work: Promise<void>, ms: number): Promise<"ok" | "timeout" | { error: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    return await Promise.race([work.then(() => "ok" as const), timeout]);
  } catch (error) {
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

function publishCommit(c: CommittedBlockInfo, events: NodeEvents, metrics: NodeMetrics): void {
  events.emit({
    type: "block",
    height: c.height,
    hash: hex(c.hash),
    time: c.block.header.time,
    appHash: hex(c.block.header.appHash),
    proposer: encodeAddress(c.block.header.proposer),
    txs: c.block.txs.length,
  });
  c.block.txs.forEach((tx, index) => {
    const result = c.txResults[index] ?? { code: 0, log: "" };
    metrics.txsCommitted.inc({ outcome: result.code === 0 ? "ok" : result.log || `code_${result.code}` });
    events.emit({
      type: "tx",
      hash: hex(txHash(tx)),
      height: c.height,
      index,
      txType: tx.payload.type,
      sender: encodeAddress(tx.signer),
      code: result.code,
      log: result.log,
    });
  });
}

/** A license to the weights, or a place in the active validator set. */
function licensedOrValidator(ledger: NodeLedger): CanServe {
  return (account, weightsId) => {
    const state = ledger.state();
    const id = hex(account);
    if (state.tables.licenses.has(`${id}/${weightsId}`)) return true;
    return state.tables.meta.get("meta")!.validators.some((v) => v.address === id);
  };
}

function sample(ledger: NodeLedger, account: NodeAccount) {
  const state = ledger.state();
  const meta = state.tables.meta.get("meta")!;
  let bondedTotal = 0n;
  for (const v of state.tables.validators.values()) bondedTotal += v.bonded;
  const position = ledger.consensus();
  const pool = ledger.mempool();
  return {
    height: meta.height,
    peers: ledger.host.peers().length,
    mempoolTxs: pool.txs,
    mempoolBytes: pool.bytes,
    consensusRound: position.round,
    consensusStep: position.step,
    bondedTotal,
    bondedSelf: state.tables.validators.get(hex(account.publicKey))?.bonded ?? 0n,
    validators: meta.validators.length,
  };
}

/** Turns the ledger's "database in use" into one plain line (its cause is LevelDB's lock message). */
export function explainStartError(err: unknown): unknown {
  if (isDeepshardError(err, "DATABASE_IN_USE")) {
    return new DeepshardError("DATABASE_IN_USE", err.shortMessage, { details: err.details });
  }
  return err;
}
