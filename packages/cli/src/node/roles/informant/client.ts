/**
 * The informant's routes of a running node, for the CLI and for scripts:
 *
 *   const informant = new InformantClient("http://127.0.0.1:26680");
 *   const blob = await buildSubmission("./notes", (await informant.status()).maxBytes);
 *   const { submission } = await informant.submit(blob.bytes, { stake: 100n });
 *   const outcome = await informant.waitForOutcome(submission);   // accepted, rejected, expired
 *   await informant.close();
 *
 * A refusal by the node is a ClientError with the node's code (TOO_LARGE, BAD_STAKE, …).
 */
import { ClientError, callNode, type NodeEndpoint, type NodeErrorBody, nodeEndpoint } from "../../client.ts";
import { InformantError } from "./errors.ts";
import type { SubmissionView } from "./service.ts";

export interface InformantStatus {
  address: string;
  maxBytes: number;
  minStake: bigint;
  votingWindow: number;
  submissions: SubmissionView[];
}

export interface SubmitResult {
  /** The data.submit transaction's hash: the submission's id on the ledger. */
  submission: string;
  contentHash: string;
  size: number;
  stake: bigint;
}

export interface WaitOptions {
  /** Default 10 minutes. */
  timeoutMs?: number | undefined;
  pollMs?: number | undefined;
  /** Called with each new status (pending → open → closed). */
  onUpdate?: ((view: SubmissionView) => void) | undefined;
  signal?: AbortSignal | undefined;
}

const FINAL = new Set(["accepted", "rejected", "expired", "failed"]);
const AMOUNTS = new Set(["stake", "minStake", "reward", "net"]);

function revive(key: string, value: unknown): unknown {
  return AMOUNTS.has(key) && typeof value === "string" && /^-?[0-9]+$/.test(value) ? BigInt(value) : value;
}

export class InformantClient {
  readonly url: string;
  readonly #node: NodeEndpoint;

  constructor(url: string, options: { timeoutMs?: number } = {}) {
    this.#node = nodeEndpoint(url, options.timeoutMs ?? 60_000, 2);
    this.url = this.#node.url;
  }

  status(): Promise<InformantStatus> {
    return this.#call("GET", "/informant/status");
  }

  /** Sends the blob's bytes; the node stores them and submits `data.submit` with its key. */
  submit(
    bytes: Uint8Array,
    options: { stake: bigint; metadata?: string | undefined },
  ): Promise<SubmitResult> {
    const query = new URLSearchParams({ stake: options.stake.toString() });
    if (options.metadata !== undefined) query.set("metadata", options.metadata);
    return this.#call("POST", `/informant/submit?${query}`, bytes);
  }

  submission(id: string): Promise<SubmissionView> {
    return this.#call("GET", `/informant/submissions/${encodeURIComponent(id)}`);
  }

  /** Polls until the submission is accepted, rejected, expired or failed. */
  async waitForOutcome(id: string, options: WaitOptions = {}): Promise<SubmissionView> {
    const timeoutMs = options.timeoutMs ?? 600_000;
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      const view = await this.submission(id);
      if (view.status !== last) {
        last = view.status;
        options.onUpdate?.(view);
      }
      if (FINAL.has(view.status)) return view;
      if (Date.now() > deadline) {
        throw new InformantError(
          "TIMEOUT",
          `submission ${id} is still ${view.status} after ${Math.round(timeoutMs / 1000)} s`,
        );
      }
      options.signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
    }
  }

  async close(): Promise<void> {
    await this.#node.agent.close();
  }

  #call<T>(method: "GET" | "POST", path: string, body?: Uint8Array): Promise<T> {
    return callNode(this.#node, method, path, { body, reviver: revive, explain: explainInformant });
  }
}

function explainInformant(status: number, error: NodeErrorBody, path: string): ClientError | undefined {
  if (status !== 404 || error.code !== "NOT_FOUND" || path !== "/informant/status") return undefined;
  return new ClientError(404, "NO_INFORMANT", "the node does not run the informant role", {
    details: "start it with --roles …,informant",
  });
}
