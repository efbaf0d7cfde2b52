/**
 * Picks the tfjs backend: the best one present, or the one asked for (option, then the
 * DEEPSHARD_BACKEND environment variable). Order: tfjs-node-gpu, tfjs-node (both optional, they
 * download libtensorflow at install, so they are imported dynamically), wasm (XNNPACK + SIMD, the
 * default), cpu (pure JS).
 */
import { createRequire } from "node:module";
import { dirname, sep } from "node:path";
import { DeepshardError } from "@deepshard/protocol";
import * as tf from "@tensorflow/tfjs-core";
import { registerWasmKernels, WASM_EXTRA_KERNELS } from "./wasm-kernels.ts";

export const BACKENDS = ["node-gpu", "node", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendPreference = BackendName | "auto";

export type BackendErrorCode = "UNKNOWN_BACKEND" | "BACKEND_UNAVAILABLE";

export class BackendError extends DeepshardError<BackendErrorCode> {
  override name = "BackendError";
}

export interface BackendOptions {
  /** Which backend; default: env DEEPSHARD_BACKEND, else "auto" (best present). */
  backend?: BackendPreference | undefined;
  /** Use the wasm SIMD binary (default: when the runtime supports it, as Node does). */
  simd?: boolean | undefined;
  /** Where DEEPSHARD_BACKEND is read from (default process.env). */
  env?: Record<string, string | undefined> | undefined;
}

export interface BackendReport {
  /** The backend in use. */
  name: BackendName;
  /** tfjs's own name for it (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  requested: BackendPreference;
  /** Where the request came from. */
  source: "option" | "env" | "default";
  /**
   * Single-threaded wasm: IEEE-exact arithmetic, the same on every CPU, so training runs can be
   * replayed bit for bit across machines.
   */
  deterministic: boolean;
  wasm?: { simd: boolean; threads: number; extraKernels: readonly string[] };
  /** Better backends that were tried and why they were not used. */
  skipped: { name: BackendName; reason: string }[];
}

const TF_NAME: Record<BackendName, string> = {
  "node-gpu": "tensorflow",
  node: "tensorflow",
  wasm: "wasm",
  cpu: "cpu",
};

const PACKAGE: Record<BackendName, string> = {
  "node-gpu": "@tensorflow/tfjs-node-gpu",
  node: "@tensorflow/tfjs-node",
  wasm: "@tensorflow/tfjs-backend-wasm",
  cpu: "@tensorflow/tfjs-backend-cpu",
};

export function isBackendPreference(value: string): value is BackendPreference {
  return value === "auto" || (BACKENDS as readonly string[]).includes(value);
}

let current: BackendReport | undefined;
let queue: Promise<unknown> = Promise.resolve();
let wasmConfigured = false;

/** The backend chosen by the last initBackend, if any. */
export function currentBackend(): BackendReport | undefined {
  return current && current.tfBackend === tf.getBackend() ? current : undefined;
}

/**
 * Selects and initialises the backend and reports which one is in use. An explicit choice that
 * cannot load is an error; "auto" walks the order and records why better backends were skipped.
 * Calls are serialised, so concurrent callers agree on the result.
 */
export function initBackend(options: BackendOptions = {}): Promise<BackendReport> {
  const run = queue.then(() => select(options));
  queue = run.catch(() => {});
  return run;
}

async function select(options: BackendOptions): Promise<BackendReport> {
  const fromEnv = (options.env ?? process.env).DEEPSHARD_BACKEND?.trim();
  const raw = options.backend ?? (fromEnv || undefined) ?? "auto";
  const source = options.backend !== undefined ? "option" : fromEnv ? "env" : "default";
  if (!isBackendPreference(raw)) {
    throw new BackendError("UNKNOWN_BACKEND", `unknown backend "${raw}"`, {
      details: `choose one of auto, ${BACKENDS.join(", ")}${source === "env" ? " (from DEEPSHARD_BACKEND)" : ""}`,
    });
  }
  const candidates = raw === "auto" ? BACKENDS : [raw];
  const skipped: BackendReport["skipped"] = [];
  for (const name of candidates) {
    try {
      await activate(name, options);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message.split("\n")[0]! : String(cause);
      if (raw !== "auto") {
        throw new BackendError("BACKEND_UNAVAILABLE", `backend "${name}" is not available`, {
          details: `${PACKAGE[name]}: ${reason}`,
          cause,
        });
      }
      skipped.push({ name, reason });
      continue;
    }
    const report: BackendReport = {
      name,
      tfBackend: tf.getBackend(),
      requested: raw,
      source,
      deterministic: name === "wasm",
      skipped,
    };
    if (name === "wasm") {
      report.wasm = {
        simd: Boolean(await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")),
        threads: 1,
        extraKernels: WASM_EXTRA_KERNELS,
      };
    }
    current = report;
    return report;
  }
  throw new BackendError("BACKEND_UNAVAILABLE", "no tfjs backend could be initialised", {
    details: skipped.map((s) => `${s.name}: ${s.reason}`).join("; "),
  });
}

async function activate(name: BackendName, options: BackendOptions): Promise<void> {
  const tfName = TF_NAME[name];
  if (name === "node" || name === "node-gpu") {
    // A variable specifier: these packages are optional and absent from the type graph.
    const specifier = PACKAGE[name];
    await import(specifier);
    if (tf.findBackendFactory(tfName) === undefined) {
      throw new Error(
        `${specifier} loaded but registered no "${tfName}" backend with this copy of tfjs-core`,
      );
    }
  } else if (name === "wasm") {
    await configureWasm(options);
  } else {
    await import("@tensorflow/tfjs-backend-cpu");
  }
  if (!(await tf.setBackend(tfName))) throw new Error(`tf.setBackend("${tfName}") failed`);
  await tf.ready();
}

async function configureWasm(options: BackendOptions): Promise<void> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  registerWasmKernels();
  if (wasmConfigured) return;
  // In Node the backend reads its .wasm binaries from disk: point it at the package's dist folder.
  const require = createRequire(import.meta.url);
  wasm.setWasmPaths(`${dirname(require.resolve(PACKAGE.wasm))}${sep}`);
  // One thread: XNNPACK's threaded reductions would make results depend on scheduling.
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  wasm.setThreadsCount(1);
  if (options.simd !== undefined) tf.env().set("WASM_HAS_SIMD_SUPPORT", options.simd);
  wasmConfigured = true;
}
