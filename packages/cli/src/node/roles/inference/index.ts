/**
 * The inference role: once this node's account holds a license to a weights id (`weights buy`),
 * `POST /inference/fetch` fetches every chunk from the holders the directory knows, several in
 * parallel, each verified against the weights id, into `<network>/models/<weightsId>/` (or copies
 * it to `out`); `GET /inference/status` shows the progress; `POST /inference/generate` answers
 * generation requests with the assembled model (loaded once, requests served one at a time). The
 * folder is a plain model directory: `deepshard generate --model <dir>` works on it too.
 */
import { cp, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { encodeAddress } from "@deepshard/protocol";
import {
  type CausalLM,
  type GenerateResult,
  generateText,
  initBackend,
  loadModel,
  type Tokenizer,
  tokenizerFor,
} from "@deepshard/tensor";
import { ApiError } from "../../api.ts";
import type { FetchProgress } from "../../blobs/index.ts";
import type { NodeConfig } from "../../config.ts";
import type { RoleContext, RoleService } from "../../service.ts";
import { type DirectoryOptions, WeightsDirectory } from "../storage/directory.ts";
import { countReceived, ModelCache } from "../storage/models.ts";
import { registerWeightsRoutes } from "../storage/routes.ts";

export interface InferenceOptions extends DirectoryOptions {}

export interface FetchJob {
  weightsId: string;
  state: "fetching" | "done" | "failed";
  startedAt: number;
  finishedAt: number | null;
  chunksDone: number;
  chunksTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Chunks per holder (peer id). */
  peers: Record<string, { chunks: number; bytes: number; failures: number }>;
  source: "cache" | "local" | "peers" | null;
  dir: string | null;
  out: string | null;
  error: { code: string; message: string; details?: string } | null;
}

const MAX_NEW_TOKENS = 512;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

export class InferenceService implements RoleService {
  readonly name = "inference";
  readonly #options: InferenceOptions;
  #ctx: RoleContext | undefined;
  #directory: WeightsDirectory | undefined;
  #cache: ModelCache | undefined;
  #me = "";
  readonly #jobs = new Map<string, FetchJob>();
  readonly #running = new Set<Promise<unknown>>();
  #model: { weightsId: string; model: CausalLM; tokenizer: Tokenizer } | undefined;
  /** Generation requests run one after another (one model, one backend). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(_config: NodeConfig, options: InferenceOptions = {}) {
    this.#options = options;
  }

  async start(ctx: RoleContext): Promise<void> {
    this.#ctx = ctx;
    this.#me = hex(ctx.account.publicKey);
    this.#directory = WeightsDirectory.acquire(ctx, this.#options);
    this.#cache = new ModelCache(ctx.paths.root, ctx.stores.chunks, ctx.stores.blobClient, this.#directory);
    await this.#cache.clean();
    registerWeightsRoutes(ctx, this.#directory);
    ctx.api.route("GET", "/inference/status", () => this.status());
    ctx.api.route("POST", "/inference/fetch", async (req) => {
      const body = (await req.json()) as { weightsId?: unknown; out?: unknown } | null;
      const weightsId = body?.weightsId ?? undefined;
      const out = body?.out ?? undefined;
      if (weightsId !== undefined && (typeof weightsId !== "string" || !/^[0-9a-f]{64}$/.test(weightsId))) {
        throw new ApiError(400, "BAD_WEIGHTS_ID", "weightsId is 64 lower-case hex digits");
      }
      if (out !== undefined && (typeof out !== "string" || out.length === 0 || out.length > 4096)) {
        throw new ApiError(400, "BAD_REQUEST", "out is a directory path");
      }
      return this.fetch(weightsId, out);
    });
    ctx.api.route("POST", "/inference/generate", async (req) => this.generate(await req.json()));
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.#running, this.#queue]);
    this.#model?.model.dispose();
    this.#model = undefined;
    this.#directory?.release();
  }

  status() {
    const ctx = this.#ctx!;
    const state = ctx.ledger.state();
    const meta = state.tables.meta.get("meta")!;
    const licenses = [...state.tables.licenses.values()]
      .filter((l) => l.buyer === this.#me)
      .map((l) => ({ weightsId: l.weightsId, price: l.price, height: l.height }));
    return {
      address: ctx.account.address,
      canonicalWeightsId: meta.canonicalWeightsId,
      price: meta.price,
      licenses,
      fetches: [...this.#jobs.values()],
      model: this.#model ? { weightsId: this.#model.weightsId } : null,
    };
  }

  /**
   * Starts (or joins) fetching `weightsId` (default: the canonical weights); answers at once with
   * the job, whose progress `status()` shows. NO_LICENSE when this account holds no license.
   */
  fetch(weightsId?: string, out?: string): FetchJob {
    const ctx = this.#ctx!;
    const state = ctx.ledger.state();
    const id = weightsId ?? state.tables.meta.get("meta")!.canonicalWeightsId;
    if (!state.tables.weights.has(id)) {
      throw new ApiError(404, "UNKNOWN_WEIGHTS", `weights ${id} were never canonical on this network`);
    }
    if (!state.tables.licenses.has(`${this.#me}/${id}`)) {
      throw new ApiError(
        403,
        "NO_LICENSE",
        `account ${ctx.account.address} holds no license to weights ${id}`,
        {
          details: `buy one first: deepshard weights buy (price now ${state.tables.meta.get("meta")!.price})`,
        },
      );
    }
    const existing = this.#jobs.get(id);
    if (existing && existing.state !== "failed" && (out === undefined || existing.out === resolve(out))) {
      return { ...existing };
    }
    const job: FetchJob = {
      weightsId: id,
      state: "fetching",
      startedAt: Date.now(),
      finishedAt: null,
      chunksDone: 0,
      chunksTotal: 0,
      bytesDone: 0,
      bytesTotal: 0,
      peers: {},
      source: null,
      dir: null,
      out: out === undefined ? null : resolve(out),
      error: null,
    };
    this.#jobs.set(id, job);
    const run = this.#cache!.ensure(id, {
      signal: ctx.signal,
      onProgress: (p: FetchProgress) => {
        job.chunksDone = p.chunksDone;
        job.chunksTotal = p.chunksTotal;
        job.bytesDone = p.bytesDone;
        job.bytesTotal = p.bytesTotal;
        job.peers = p.peers;
      },
    })
      .then(async (model) => {
        if (job.out) await copyModel(model.dir, job.out);
        job.dir = model.dir;
        job.source = model.source;
        if (model.source === "peers") job.peers = model.peers;
        countReceived(ctx.metrics, model.peers);
        job.chunksTotal = model.manifest.chunkCount;
        job.chunksDone = model.manifest.chunkCount;
        job.bytesTotal = model.manifest.totalSize;
        job.bytesDone = model.manifest.totalSize;
        job.state = "done";
        ctx.events.emit({
          type: "inference.fetched",
          weightsId: id,
          source: model.source,
          holders: Object.keys(job.peers).length,
        });
      })
      .catch((err: unknown) => {
        const e = err as { code?: unknown; shortMessage?: unknown; message?: unknown; details?: unknown };
        job.state = "failed";
        job.error = {
          code: typeof e.code === "string" ? e.code : "FETCH_FAILED",
          message: String(e.shortMessage ?? e.message ?? err),
          ...(typeof e.details === "string" ? { details: e.details } : {}),
        };
        if (!ctx.signal.aborted)
          ctx.logger.warn("weights fetch failed", { weightsId: id, error: job.error.message });
      })
      .finally(() => {
        job.finishedAt = Date.now();
        this.#running.delete(run);
      });
    this.#running.add(run);
    return { ...job };
  }

  /** `{prompt, maxTokens?, temperature?, topK?, topP?, seed?, weightsId?}` → the completion. */
  generate(body: unknown): Promise<unknown> {
    const req = parseGenerate(body);
    const run = this.#queue.then(async () => {
      const ctx = this.#ctx!;
      const state = ctx.ledger.state();
      const id = req.weightsId ?? this.#defaultModel();
      if (!id) {
        throw new ApiError(409, "NO_MODEL", "no weights fetched yet", {
          details: "buy a license (deepshard weights buy), then fetch (deepshard weights fetch)",
        });
      }
      if (!state.tables.licenses.has(`${this.#me}/${id}`) || !(await this.#cache!.has(id))) {
        throw new ApiError(409, "NO_MODEL", `weights ${id} are not fetched on this node`, {
          details: "deepshard weights fetch",
        });
      }
      if (this.#model?.weightsId !== id) {
        await initBackend({ backend: "wasm" });
        const model = await loadModel(this.#cache!.dirOf(id));
        this.#model?.model.dispose();
        this.#model = { weightsId: id, model, tokenizer: tokenizerFor(model.config) };
      }
      const { model, tokenizer } = this.#model;
      const it = generateText(model, tokenizer, req.prompt, {
        maxNewTokens: req.maxTokens,
        seed: req.seed,
        ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
        ...(req.topK !== undefined ? { topK: req.topK } : {}),
        ...(req.topP !== undefined ? { topP: req.topP } : {}),
        signal: ctx.signal,
      });
      let text = "";
      let result: GenerateResult;
      for (;;) {
        const r = await it.next();
        if (r.done) {
          result = r.value;
          break;
        }
        text += r.value;
      }
      return {
        weightsId: id,
        text,
        tokens: result.tokens.length,
        finishReason: result.finishReason,
        seed: req.seed,
        node: encodeAddress(ctx.account.publicKey),
      };
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** The canonical weights when fetched, else the most recently fetched ones. */
  #defaultModel(): string | undefined {
    const canonical = this.#ctx!.ledger.state().tables.meta.get("meta")!.canonicalWeightsId;
    const done = [...this.#jobs.values()].filter((j) => j.state === "done");
    if (done.some((j) => j.weightsId === canonical)) return canonical;
    return (
      this.#model?.weightsId ?? done.sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0))[0]?.weightsId
    );
  }
}

interface GenerateRequest {
  prompt: string;
  maxTokens: number;
  seed: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  weightsId?: string;
}

function parseGenerate(body: unknown): GenerateRequest {
  const b = body as Record<string, unknown> | null;
  const bad = (why: string): never => {
    throw new ApiError(400, "BAD_REQUEST", why);
  };
  if (typeof b !== "object" || b === null) return bad('expected {"prompt": "…"}');
  if (typeof b.prompt !== "string" || b.prompt.length === 0 || b.prompt.length > 16_384) {
    return bad("prompt is a non-empty string of at most 16384 characters");
  }
  const num = (key: string, min: number, max: number, integer: boolean): number | undefined => {
    const v = b[key];
    if (v === undefined) return undefined;
    if (
      typeof v !== "number" ||
      !Number.isFinite(v) ||
      v < min ||
      v > max ||
      (integer && !Number.isInteger(v))
    ) {
      return bad(`${key} must be ${integer ? "an integer" : "a number"} in [${min}, ${max}]`);
    }
    return v;
  };
  const weightsId = b.weightsId;
  if (weightsId !== undefined && (typeof weightsId !== "string" || !/^[0-9a-f]{64}$/.test(weightsId))) {
    return bad("weightsId is 64 lower-case hex digits");
  }
  const out: GenerateRequest = {
    prompt: b.prompt,
    maxTokens: num("maxTokens", 1, MAX_NEW_TOKENS, true) ?? 64,
    seed: num("seed", 0, 2 ** 47, true) ?? 0,
  };
  const temperature = num("temperature", 0, 10, false);
  const topK = num("topK", 1, 1_000_000, true);
  const topP = num("topP", 0, 1, false);
  if (temperature !== undefined) out.temperature = temperature;
  if (topK !== undefined) out.topK = topK;
  if (topP !== undefined) out.topP = topP;
  if (typeof weightsId === "string") out.weightsId = weightsId;
  return out;
}

async function copyModel(from: string, to: string): Promise<void> {
  const exists = await stat(to).then(
    () => true,
    () => false,
  );
  if (exists && resolve(to) === resolve(from)) return;
  await cp(from, to, { recursive: true, force: true });
}
