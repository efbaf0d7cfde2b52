/**
 * The weights routes of a running node (trainer, storage and inference roles), for the CLI and
 * for scripts:
 *
 *   const weights = new WeightsClient("http://127.0.0.1:26680");
 *   const { price, canonicalWeightsId } = await weights.overview();
 *   await weights.fetch();                                   // after `weights buy`
 *   const job = await weights.waitForFetch(canonicalWeightsId, (j) => console.log(j.chunksDone));
 *   const { text } = await weights.generate({ prompt: "Seven plus five is" });
 *   await weights.close();
 *
 * A refusal by the node is a ClientError with the node's code (NO_LICENSE, NO_MODEL, …); a route
 * of a role the node does not run is ROLE_NOT_RUNNING.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ClientError, callNode, type NodeEndpoint, nodeEndpoint } from "../../client.ts";
import type { FetchJob } from "../inference/index.ts";

export interface WeightsOverview {
  height: number;
  canonicalWeightsId: string;
  genesisWeightsId: string;
  price: bigint;
  accumulatedValue: bigint;
  history: { weightsId: string; round: number; height: number; index: number }[];
}

export interface WeightsInspection {
  weightsId: string;
  canonical: boolean;
  record: { index: number; weightsId: string; round: number; height: number } | null;
  chunkCount: number | null;
  licensed: boolean;
  holders: {
    peerId: string;
    address: string;
    roles: string[];
    chunks: number;
    self: boolean;
    ageMs: number;
  }[];
  replication: ReplicationHealth | null;
}

/** How well a model's chunks are replicated across the storage set. */
export interface ReplicationHealth {
  target: number;
  min: number;
  underReplicated: number;
  missing: number;
  storageSet: string[];
  placed: number;
}

export interface InferenceStatus {
  address: string;
  canonicalWeightsId: string;
  price: bigint;
  licenses: { weightsId: string; price: bigint; height: number }[];
  fetches: FetchJob[];
  model: { weightsId: string } | null;
}

export interface GenerateRequest {
  prompt: string;
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  weightsId?: string;
}

export interface GenerateResponse {
  weightsId: string;
  text: string;
  tokens: number;
  finishReason: "stop" | "length";
  seed: number;
  node: string;
}

const AMOUNTS = new Set(["price", "accumulatedValue", "balance", "stake"]);

function revive(key: string, value: unknown): unknown {
  return AMOUNTS.has(key) && typeof value === "string" && /^[0-9]+$/.test(value) ? BigInt(value) : value;
}

const ROLE_OF: [string, string][] = [
  ["/trainer/", "trainer"],
  ["/inference/", "inference"],
  ["/weights", "trainer, storage or inference"],
];

export class WeightsClient {
  readonly url: string;
  readonly #node: NodeEndpoint;

  constructor(url: string, options: { timeoutMs?: number } = {}) {
    this.#node = nodeEndpoint(url, options.timeoutMs ?? 120_000, 2);
    this.url = this.#node.url;
  }

  overview(): Promise<WeightsOverview> {
    return this.#call("GET", "/weights");
  }

  inspect(weightsId: string): Promise<WeightsInspection> {
    return this.#call("GET", `/weights/${encodeURIComponent(weightsId)}`);
  }

  trainerStatus(): Promise<Record<string, unknown>> {
    return this.#call("GET", "/trainer/status");
  }

  inferenceStatus(): Promise<InferenceStatus> {
    return this.#call("GET", "/inference/status");
  }

  /** Starts (or joins) fetching `weightsId` (default: canonical); `out` also receives a copy. */
  fetch(options: { weightsId?: string | undefined; out?: string | undefined } = {}): Promise<FetchJob> {
    const body: Record<string, string> = {};
    if (options.weightsId) body.weightsId = options.weightsId;
    if (options.out) body.out = options.out;
    return this.#call("POST", "/inference/fetch", JSON.stringify(body));
  }

  /** Polls until the fetch of `weightsId` is done; a failed fetch is a ClientError with its code. */
  async waitForFetch(
    weightsId: string,
    onProgress?: (job: FetchJob) => void,
    options: { timeoutMs?: number; pollMs?: number; signal?: AbortSignal } = {},
  ): Promise<FetchJob> {
    const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
    for (;;) {
      options.signal?.throwIfAborted();
      const job = (await this.inferenceStatus()).fetches.find((j) => j.weightsId === weightsId);
      if (!job) throw new ClientError(404, "NO_FETCH", `the node is not fetching weights ${weightsId}`);
      onProgress?.(job);
      if (job.state === "done") return job;
      if (job.state === "failed") {
        throw new ClientError(
          200,
          job.error?.code ?? "FETCH_FAILED",
          job.error?.message ?? "the fetch failed",
          {
            details: job.error?.details,
          },
        );
      }
      if (Date.now() > deadline)
        throw new ClientError(0, "FETCH_TIMEOUT", `weights ${weightsId} not fetched in time`);
      await sleep(options.pollMs ?? 200, undefined, options.signal ? { signal: options.signal } : {});
    }
  }

  generate(req: GenerateRequest): Promise<GenerateResponse> {
    return this.#call("POST", "/inference/generate", JSON.stringify(req));
  }

  async close(): Promise<void> {
    await this.#node.agent.close();
  }

  #call<T>(method: "GET" | "POST", path: string, body?: string): Promise<T> {
    return callNode(this.#node, method, path, {
      body,
      reviver: revive,
      explain: (status, error) => {
        if (status !== 404 || error.code !== "NOT_FOUND") return undefined;
        const role = ROLE_OF.find(([prefix]) => path.startsWith(prefix))?.[1] ?? "needed";
        return new ClientError(
          404,
          "ROLE_NOT_RUNNING",
          `the node at ${this.url} does not run the ${role} role`,
          {
            details: "start it with that role: deepshard node start --roles …",
          },
        );
      },
    });
  }
}
