/**
 * The node's Prometheus metrics (`GET /metrics`). Gauges read the live values when scraped;
 * counters are incremented by the parts that see the events (the blob layer counts chunk
 * transfers). Each daemon has its own registry, so several nodes can run in one process.
 */
import { Counter, Gauge, Registry } from "prom-client";

/** A snapshot of what the gauges show, taken at scrape time. */
export interface NodeSample {
  height: number;
  peers: number;
  mempoolTxs: number;
  mempoolBytes: number;
  consensusRound: number;
  consensusStep: "propose" | "prevote" | "precommit" | string;
  /** Σ bonded stake of all validators, in the smallest unit. */
  bondedTotal: bigint;
  /** This node's own bonded stake. */
  bondedSelf: bigint;
  validators: number;
}

const STEPS: Record<string, number> = { propose: 1, prevote: 2, precommit: 3 };

/** Token amounts exceed 2^53 only on absurd chains; the gauge is a float either way. */
const toFloat = (n: bigint): number => Number(n);

export class NodeMetrics {
  readonly registry = new Registry();
  /**
   * Chunks moved by the role services (fetching weights, re-replicating), by direction (`sent`,
   * `received`) and outcome (`ok`, `failed`); what the blob service answers is `deepshard_served_total`.
   */
  readonly chunkTransfers: Counter<"direction" | "outcome">;
  readonly chunkBytes: Counter<"direction">;
  /** Committed transactions by outcome (`ok` or the error code). */
  readonly txsCommitted: Counter<"outcome">;
  readonly apiRequests: Counter<"method" | "status">;
  #sample: () => NodeSample | undefined = () => undefined;

  constructor(labels: Record<string, string> = {}) {
    this.registry.setDefaultLabels(labels);
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: (s: NodeSample) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect: () => {
          const s = this.#sample();
          if (s) gaugeSet(name, read(s));
        },
      });
    const gauges = new Map<string, Gauge>();
    const gaugeSet = (name: string, value: number) => gauges.get(name)?.set(value);
    for (const [name, help, read] of [
      ["deepshard_height", "Height of the last committed block", (s) => s.height],
      ["deepshard_peers", "Connected libp2p peers", (s) => s.peers],
      ["deepshard_mempool_txs", "Transactions waiting in the mempool", (s) => s.mempoolTxs],
      ["deepshard_mempool_bytes", "Bytes of the transactions in the mempool", (s) => s.mempoolBytes],
      ["deepshard_consensus_round", "Consensus round at the current height", (s) => s.consensusRound],
      [
        "deepshard_consensus_step",
        "Consensus step: 1 propose, 2 prevote, 3 precommit",
        (s) => STEPS[s.consensusStep] ?? 0,
      ],
      ["deepshard_bonded_stake", "Total bonded stake of all validators", (s) => toFloat(s.bondedTotal)],
      ["deepshard_bonded_stake_self", "This node's bonded stake", (s) => toFloat(s.bondedSelf)],
      ["deepshard_validators", "Validators in the active set", (s) => s.validators],
    ] as [string, string, (s: NodeSample) => number][]) {
      gauges.set(name, gauge(name, help, read));
    }
    this.chunkTransfers = new Counter({
      name: "deepshard_chunk_transfers_total",
      help: "Weight and blob chunks transferred over libp2p",
      labelNames: ["direction", "outcome"],
      registers,
    });
    this.chunkBytes = new Counter({
      name: "deepshard_chunk_bytes_total",
      help: "Bytes of chunks transferred over libp2p",
      labelNames: ["direction"],
      registers,
    });
    this.txsCommitted = new Counter({
      name: "deepshard_txs_committed_total",
      help: "Transactions in committed blocks, by outcome",
      labelNames: ["outcome"],
      registers,
    });
    this.apiRequests = new Counter({
      name: "deepshard_api_requests_total",
      help: "HTTP API requests, by method and status",
      labelNames: ["method", "status"],
      registers,
    });
  }

  /**
   * Counters kept by another part as plain numbers (the blob service's stats): read at scrape
   * time, one series per key of what `read` returns.
   */
  countFrom(name: string, help: string, label: string, read: () => Record<string, number> | undefined): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        const values = read();
        if (!values) return;
        this.reset();
        for (const [key, value] of Object.entries(values)) this.inc({ [label]: key }, value);
      },
    });
  }

  /** Where the gauges read from; set once the ledger node runs. */
  setSampler(sample: () => NodeSample | undefined): void {
    this.#sample = sample;
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
