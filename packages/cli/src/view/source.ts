/**
 * Feeds the view's store from running nodes: their events as they happen, the transactions of
 * each block with transactions (read from the first node), and snapshots of the API polled about
 * once a second (status, validators, supply, balances, weights and replication, the active round,
 * the open submissions).
 */
import { ClientError, DeepshardClient } from "../node/client.ts";
import type { NodeEvent } from "../node/events.ts";
import type {
  ActiveRound,
  OpenSubmission,
  ReplicationView,
  ViewAction,
  ViewNode,
  WeightsOverview,
} from "./state.ts";

export type EventSubscriber = (listener: (node: string, event: NodeEvent) => void) => () => void;

export interface ViewSourceOptions {
  nodes: ViewNode[];
  /** Every node's events, e.g. `Devnet.subscribe` or a daemon's own `NodeEvents`. */
  subscribe: EventSubscriber;
  dispatch: (action: ViewAction) => void;
  pollMs?: number;
}

/** Accounts besides the nodes' own whose balances are shown (the first validators). */
const MAX_EXTRA_ACCOUNTS = 8;

export class ViewSource {
  readonly #options: ViewSourceOptions;
  readonly #clients = new Map<string, DeepshardClient>();
  readonly #primary: ViewNode;
  readonly #blocks: number[] = [];
  #draining: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #stopped = false;
  #validators: string[] = [];
  #canonical = "";

  constructor(options: ViewSourceOptions) {
    if (options.nodes.length === 0) throw new RangeError("the view needs at least one node");
    this.#options = options;
    this.#primary = options.nodes[0]!;
    for (const n of options.nodes)
      this.#clients.set(n.name, new DeepshardClient(n.api, { timeoutMs: 5_000 }));
  }

  start(): void {
    const { dispatch } = this.#options;
    dispatch({ type: "nodes", nodes: this.#options.nodes });
    this.#unsubscribe = this.#options.subscribe((node, event) => {
      // Every node reports every block; one node's report of each is enough.
      const chain = event.type === "block" || event.type === "tx";
      if (chain && node !== this.#primary.name) return;
      dispatch({ type: "event", node, event });
      if (event.type === "block" && event.txs > 0) this.#queueBlock(event.height);
    });
    const tick = () => {
      this.#polling = this.poll().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#options.pollMs ?? 1_000);
      });
    };
    tick();
  }

  /** Stops following the node(s); calling it again does nothing. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unsubscribe?.();
    clearTimeout(this.#timer);
    await Promise.allSettled([this.#polling, this.#draining]);
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
  }

  /** One round of snapshots; errors are shown per node, never thrown. */
  async poll(): Promise<void> {
    const { dispatch, nodes } = this.#options;
    const primary = this.#client(this.#primary);
    await this.#ask(this.#primary, async () => {
      const [status, set, supply] = await Promise.all([
        primary.status(),
        primary.validators(),
        primary.supply(),
      ]);
      dispatch({ type: "status", node: this.#primary.name, status });
      dispatch({ type: "validators", set });
      dispatch({ type: "supply", supply });
      this.#validators = set.validators.map((v) => v.address);
      this.#canonical = status.canonicalWeightsId;
    });
    const accounts = [
      ...new Set([...nodes.map((n) => n.address), ...this.#validators.slice(0, MAX_EXTRA_ACCOUNTS)]),
    ];
    await this.#ask(this.#primary, async () => {
      const infos = await Promise.all(accounts.map((a) => primary.account(a)));
      for (const account of infos) dispatch({ type: "account", account });
    });
    const weightsNode = nodes.find((n) =>
      n.roles.some((r) => r === "storage" || r === "trainer" || r === "inference"),
    );
    if (weightsNode) {
      await this.#ask(weightsNode, async () => {
        dispatch({ type: "weights", overview: await this.#get<WeightsOverview>(weightsNode, "/weights") });
        if (/^[0-9a-f]{64}$/.test(this.#canonical)) {
          const view = await this.#get<ReplicationView>(weightsNode, `/weights/${this.#canonical}`);
          dispatch({ type: "replication", view });
        }
      });
    }
    const trainer = nodes.find((n) => n.roles.includes("trainer"));
    if (trainer) {
      await this.#ask(trainer, async () => {
        const status = await this.#get<{ activeRound: ActiveRound | null }>(trainer, "/trainer/status");
        if (status.activeRound) dispatch({ type: "round", round: status.activeRound });
      });
    }
    const validator = nodes.find((n) => n.roles.includes("validator"));
    if (validator) {
      await this.#ask(validator, async () => {
        const report = await this.#get<{ open: OpenSubmission[] }>(validator, "/validator/data");
        dispatch({ type: "open-submissions", open: report.open });
      });
    }
  }

  #client(node: ViewNode): DeepshardClient {
    return this.#clients.get(node.name)!;
  }

  async #get<T>(node: ViewNode, path: string): Promise<T> {
    const res = await fetch(`${node.api}${path}`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok)
      throw new ClientError(res.status, `HTTP_${res.status}`, `${path} answered HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  async #ask(node: ViewNode, work: () => Promise<void>): Promise<void> {
    if (this.#stopped) return;
    try {
      await work();
    } catch (err) {
      if (this.#stopped) return;
      const message = err instanceof Error ? err.message : String(err);
      this.#options.dispatch({ type: "error", node: node.name, message });
    }
  }

  #queueBlock(height: number): void {
    this.#blocks.push(height);
    this.#draining ??= (async () => {
      const client = this.#client(this.#primary);
      for (let h = this.#blocks.shift(); h !== undefined && !this.#stopped; h = this.#blocks.shift()) {
        const height = h;
        await this.#ask(this.#primary, async () => {
          const block = await client.block(height);
          this.#options.dispatch({ type: "block", height, txs: block.txs });
        });
      }
    })().finally(() => {
      this.#draining = undefined;
    });
  }
}
