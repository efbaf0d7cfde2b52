/**
 * The daemon's side of worker.ts: requests as promises, the thread started on first use and again
 * after it died, and ended at stop (which abandons a training run; its folder is never adopted).
 */
import { Worker } from "node:worker_threads";
import { DeepshardError } from "@deepshard/protocol";
import type { RoundProbes } from "./probes.ts";
import type { JudgeReply, TrainReply, WorkerReply, WorkerRequest } from "./worker.ts";

export class WorkerError extends DeepshardError {
  override name = "WorkerError";
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class TensorWorker {
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  /** Requests sent to the thread, for the status route. */
  requests = 0;

  train(req: Omit<Extract<WorkerRequest, { op: "train" }>, "op">): Promise<TrainReply> {
    return this.#call({ op: "train", ...req }) as Promise<TrainReply>;
  }

  probes(req: Omit<Extract<WorkerRequest, { op: "probes" }>, "op">): Promise<RoundProbes> {
    return this.#call({ op: "probes", ...req }) as Promise<RoundProbes>;
  }

  fingerprint(req: Omit<Extract<WorkerRequest, { op: "fingerprint" }>, "op">): Promise<void> {
    return this.#call({ op: "fingerprint", ...req }) as Promise<void>;
  }

  judge(req: Omit<Extract<WorkerRequest, { op: "judge" }>, "op">): Promise<JudgeReply> {
    return this.#call({ op: "judge", ...req }) as Promise<JudgeReply>;
  }

  /**
   * Ends the thread when it has nothing to do (the next request starts a new one): wasm memory
   * only grows, so a round's peak is given back between rounds.
   */
  async release(): Promise<void> {
    const worker = this.#worker;
    if (!worker || this.#pending.size > 0) return;
    this.#worker = undefined;
    await worker.terminate();
  }

  /** Ends the thread; pending requests fail with WORKER_STOPPED. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#failAll(new WorkerError("WORKER_STOPPED", "the validator's tensor worker stopped"));
    await worker?.terminate();
  }

  #call(req: WorkerRequest): Promise<unknown> {
    if (this.#closed)
      return Promise.reject(new WorkerError("WORKER_STOPPED", "the validator's tensor worker stopped"));
    const worker = this.#ensure();
    const id = this.#nextId++;
    this.requests++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, req });
    });
  }

  #ensure(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL("./worker.ts", import.meta.url));
    // The daemon may exit while a replica trains; the thread must not keep it alive.
    worker.unref();
    worker.on("message", (reply: WorkerReply) => {
      const p = this.#pending.get(reply.id);
      if (!p) return;
      this.#pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new WorkerError(reply.error.code, reply.error.message));
    });
    const died = (err: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#failAll(new WorkerError("WORKER_FAILED", "the validator's tensor worker died", { cause: err }));
    };
    worker.on("error", died);
    worker.on("exit", (code) => died(new Error(`exit code ${code}`)));
    this.#worker = worker;
    return worker;
  }

  #failAll(err: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }
}
