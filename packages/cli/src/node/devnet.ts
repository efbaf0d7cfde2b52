/**
 * A local network of `deepshard node start` processes on loopback: one genesis (validators bonded,
 * every node funded, short windows), the genesis model trained once and cached by recipe, one data
 * directory per node, each node bootstrapped to the ones started before it, and the nodes' event
 * streams merged into one. The layout under `dir`:
 *
 *   devnet.json                 what was generated (chain id, nodes and their roles, weights id)
 *   models/<recipe key>/        the genesis model of that recipe (reused across --fresh)
 *   node-<i>/<chainId>/…        each node's data directory; node-<i>/node.log its log
 *
 * Restarting on the same `dir` reuses the network (keys, ledger, chunks); `fresh` wipes it first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createGenesis, genesisToString, type ParamsOverrides } from "@deepshard/ledger";
import { DeepshardError, encodeAddress, generateKeyPair, writeKeystore } from "@deepshard/protocol";
import type { GenesisOptions } from "@deepshard/tensor";
import { ChunkStore } from "./blobs/index.ts";
import { defaultConfig, ROLES, type Role, writeConfigFile } from "./config.ts";
import { exists, networkPaths } from "./datadir.ts";
import type { NodeEvent } from "./events.ts";
import { importModel } from "./roles/storage/models.ts";

export type DevnetErrorCode = "DEVNET_BAD_ROLES" | "DEVNET_NODE_FAILED" | "DEVNET_MISMATCH";

export class DevnetError extends DeepshardError<DevnetErrorCode> {
  override name = "DevnetError";
}

export type GenesisRecipe = Omit<GenesisOptions, "onProgress">;

/** A smaller model than the tensor package's default: trains in seconds, rounds fit in minutes. */
export const DEVNET_RECIPE: GenesisRecipe = { steps: 60, batchSize: 16, nEmbd: 64, nLayer: 2, nHead: 4 };

/**
 * Short windows and a small batch: a data loop in seconds and a training round in about two
 * minutes on a busy 2-core machine (blocks come every 0.5–1 s there), so the demo's whole cycle
 * fits in about four minutes.
 */
export const DEVNET_PARAMS: ParamsOverrides = {
  // A validator busy training reference replicas may miss blocks; it should not be jailed for it.
  downtime: { window: 10_000, minSignedBps: 1_000 },
  data: { votingWindow: 20, minStake: 10n },
  training: {
    batchSize: 1,
    commitWindow: 50,
    revealWindow: 20,
    verdictWindow: 40,
    hyperParameters: { learningRateMicro: 3000, epochs: 2, microBatch: 4 },
  },
};

/** Every devnet key is sealed with this passphrase: the devnet is a local toy with throwaway keys. */
export const DEVNET_PASSPHRASE = "devnet";
export const DEVNET_CHAIN_ID = "devnet";
const START_BALANCE = 1_000_000n;
const BOND = 10_000n;

export interface DevnetNodeSpec {
  name: string;
  roles: Role[];
  address: string;
  /** The data directory passed as --data-dir. */
  dataDir: string;
  /** Extra environment of this node (the trainer behaviour test knob, for instance). */
  env: Record<string, string>;
}

export interface DevnetManifest {
  chainId: string;
  weightsId: string;
  recipe: GenesisRecipe;
  nodes: DevnetNodeSpec[];
}

/**
 * `--roles`: a comma-separated list of `role=count` (a bare role counts 1), spread over `nodes`
 * processes. Validators and storage go on the first nodes; the other roles go one by one to the
 * least loaded node that does not carry that role yet.
 */
export function spreadRoles(nodes: number, spec: string): Role[][] {
  if (!Number.isSafeInteger(nodes) || nodes < 1 || nodes > 32) {
    throw new DevnetError("DEVNET_BAD_ROLES", "--nodes must be a whole number from 1 to 32", {
      details: `got ${nodes}`,
    });
  }
  const counts = new Map<Role, number>();
  for (const part of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [name, count = "1"] = part.split("=");
    if (!(ROLES as readonly string[]).includes(name!) || !/^[0-9]{1,2}$/.test(count)) {
      throw new DevnetError("DEVNET_BAD_ROLES", `--roles: "${part}" is not <role>[=<count>]`, {
        details: `roles: ${ROLES.join(", ")}`,
      });
    }
    if (Number(count) > nodes) {
      throw new DevnetError("DEVNET_BAD_ROLES", `--roles: ${part} needs at least ${count} nodes`, {
        details: `a node carries a role at most once; pass --nodes ${count}`,
      });
    }
    counts.set(name as Role, (counts.get(name as Role) ?? 0) + Number(count));
  }
  const out: Role[][] = Array.from({ length: nodes }, () => []);
  const load = new Array<number>(nodes).fill(0);
  for (const role of ROLES) {
    const count = Math.min(counts.get(role) ?? 0, nodes);
    if (role === "validator" || role === "storage") {
      for (let i = 0; i < count; i++) out[i]!.push(role);
      continue;
    }
    for (let k = 0; k < count; k++) {
      let best = -1;
      for (let i = 0; i < nodes; i++) {
        if (!out[i]!.includes(role) && (best < 0 || load[i]! < load[best]!)) best = i;
      }
      out[best]!.push(role);
      load[best]!++;
    }
  }
  if (!out.some((r) => r.includes("validator"))) {
    throw new DevnetError("DEVNET_BAD_ROLES", "--roles: a devnet needs at least one validator");
  }
  return out.map((roles) => ROLES.filter((r) => roles.includes(r)));
}

export const DEFAULT_ROLES = "validator=4,storage=4,informant=2,trainer=3,inference=1";

export interface PrepareOptions {
  dir: string;
  /** Roles per node; the node count is its length. */
  roles: Role[][];
  fresh?: boolean;
  recipe?: GenesisRecipe;
  /** A model folder to start from instead of the one trained from `recipe` (the examples bring their own). */
  model?: string;
  params?: ParamsOverrides;
  /** Extra environment per node index. */
  env?: Record<number, Record<string, string>>;
  /** Tests cut small models into many chunks; a real devnet uses the network's size. */
  chunkSize?: number;
  /** Told what is being prepared (training the genesis model takes a while). */
  onProgress?: (message: string) => void;
}

/** Creates the devnet under `dir`, or reuses the one already there. */
export async function prepareDevnet(options: PrepareOptions): Promise<DevnetManifest> {
  const dir = resolve(options.dir);
  const file = join(dir, "devnet.json");
  if (options.fresh) {
    const old = await readManifest(file);
    for (const node of old?.nodes ?? []) await rm(node.dataDir, { recursive: true, force: true });
    await rm(file, { force: true });
  }
  const existing = await readManifest(file);
  if (existing) {
    const want = options.roles.map((r) => r.join(","));
    const have = existing.nodes.map((n) => n.roles.join(","));
    if (want.join(";") !== have.join(";")) {
      throw new DevnetError("DEVNET_MISMATCH", `the devnet in ${dir} has other nodes or roles`, {
        details: `it has ${have.map((r, i) => `node-${i}: ${r}`).join("; ")}; pass --fresh to replace it`,
      });
    }
    return existing;
  }
  const recipe = options.recipe ?? DEVNET_RECIPE;
  const modelDir = options.model ?? (await genesisModel(dir, recipe, options.onProgress));
  const { chunkSize } = options;
  const scratch = await ChunkStore.open(join(dir, "models", "scratch"));
  const { weightsId } = await importModel(scratch, modelDir, { chunkSize });
  await rm(join(dir, "models", "scratch"), { recursive: true, force: true });

  const keys = options.roles.map(() => generateKeyPair());
  const genesis = createGenesis({
    chainId: DEVNET_CHAIN_ID,
    genesisTime: Date.now(),
    genesisWeightsId: Buffer.from(weightsId, "hex"),
    validators: keys.flatMap((k, i) =>
      options.roles[i]!.includes("validator")
        ? [{ address: k.publicKey, bonded: BOND, balance: START_BALANCE }]
        : [],
    ),
    accounts: keys.flatMap((k, i) =>
      options.roles[i]!.includes("validator") ? [] : [{ address: k.publicKey, balance: START_BALANCE }],
    ),
    params: options.params ?? DEVNET_PARAMS,
  });
  const nodes: DevnetNodeSpec[] = [];
  for (let i = 0; i < keys.length; i++) {
    const dataDir = join(dir, `node-${i}`);
    const paths = networkPaths(dataDir, DEVNET_CHAIN_ID);
    await rm(dataDir, { recursive: true, force: true });
    for (const d of [paths.root, paths.keys, paths.blobs, paths.weights]) await mkdir(d, { recursive: true });
    await writeKeystore(paths.nodeKey, keys[i]!.secretKey, DEVNET_PASSPHRASE);
    await writeFile(paths.genesis, genesisToString(genesis));
    await writeConfigFile(paths.config, {
      ...defaultConfig(DEVNET_CHAIN_ID),
      roles: options.roles[i]!,
      listen: ["/ip4/127.0.0.1/tcp/0"],
      apiPort: 0,
      blockIntervalMs: 500,
    });
    // Storage nodes start holding the genesis weights (they keep their share, drop the rest).
    if (options.roles[i]!.includes("storage")) {
      await importModel(await ChunkStore.open(paths.root), modelDir, { chunkSize });
    }
    nodes.push({
      name: `node-${i}`,
      roles: options.roles[i]!,
      address: encodeAddress(keys[i]!.publicKey),
      dataDir,
      env: options.env?.[i] ?? {},
    });
  }
  const manifest: DevnetManifest = { chainId: DEVNET_CHAIN_ID, weightsId, recipe, nodes };
  await writeFile(file, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

async function readManifest(file: string): Promise<DevnetManifest | undefined> {
  if (!(await exists(file))) return undefined;
  return JSON.parse(await readFile(file, "utf8")) as DevnetManifest;
}

/** The genesis model of `recipe`, trained once into `<dir>/models/<key>`. */
export async function genesisModel(
  dir: string,
  recipe: GenesisRecipe,
  onProgress?: (message: string) => void,
): Promise<string> {
  const key = createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 16);
  const out = join(dir, "models", key);
  if (await exists(join(out, "config.json"))) return out;
  onProgress?.(`training the genesis model (${JSON.stringify(recipe)})`);
  const { initBackend, writeGenesis } = await import("@deepshard/tensor");
  await initBackend({ backend: "wasm" });
  const tmp = `${out}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  const info = await writeGenesis(tmp, recipe);
  await rm(out, { recursive: true, force: true });
  await import("node:fs/promises").then((fs) => fs.rename(tmp, out));
  onProgress?.(
    `genesis model: ${info.parameterCount} parameters, held-out loss ${info.heldOutLoss.toFixed(3)}`,
  );
  return out;
}

/** What a running devnet node told on start. */
export interface DevnetNode extends DevnetNodeSpec {
  api: string;
  peerId: string;
  listen: string[];
  pid: number;
}

/** An event of one node, named. */
export interface DevnetEvent {
  node: string;
  event: NodeEvent;
}

export interface StartDevnetOptions {
  /** The deepshard executable (default: this package's bin/deepshard.js run by this Node). */
  command?: { file: string; args: string[] };
  logLevel?: string;
  /** How long a node may take to start. */
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

const BIN = join(import.meta.dirname, "..", "..", "bin", "deepshard.js");

/** The running node processes of a devnet. `stop()` ends every one of them. */
export class Devnet {
  readonly manifest: DevnetManifest;
  readonly nodes: DevnetNode[] = [];
  readonly #children: ChildProcess[] = [];
  readonly #listeners = new Set<(e: DevnetEvent) => void>();
  readonly #aborts = new AbortController();
  readonly #exitHook = () => {
    for (const c of this.#children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  };
  #stopped: Promise<void> | undefined;

  private constructor(manifest: DevnetManifest) {
    this.manifest = manifest;
  }

  /** Starts the nodes one after the other, each bootstrapped to those already running. */
  static async start(manifest: DevnetManifest, options: StartDevnetOptions = {}): Promise<Devnet> {
    const devnet = new Devnet(manifest);
    process.on("exit", devnet.#exitHook);
    try {
      for (const spec of manifest.nodes) await devnet.#startNode(spec, options);
    } catch (err) {
      await devnet.stop();
      throw err;
    }
    return devnet;
  }

  /** Calls `listener` for each event of every node from now on; returns the function that stops it. */
  subscribe(listener: (e: DevnetEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  node(name: string): DevnetNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new DevnetError("DEVNET_NODE_FAILED", `no node ${name}`);
    return node;
  }

  async #startNode(spec: DevnetNodeSpec, options: StartDevnetOptions): Promise<void> {
    const command = options.command ?? { file: process.execPath, args: [BIN] };
    const bootstrap = this.nodes.flatMap((n) =>
      n.listen.slice(0, 1).map((a) => (a.includes("/p2p/") ? a : `${a}/p2p/${n.peerId}`)),
    );
    const log = await open(join(spec.dataDir, "node.log"), "a");
    const args = [
      ...command.args,
      "node",
      "start",
      "--data-dir",
      spec.dataDir,
      "--json",
      "--log-level",
      options.logLevel ?? "info",
      ...(bootstrap.length > 0 ? ["--bootstrap", bootstrap.join(",")] : []),
    ];
    const child = spawn(command.file, args, {
      // The IPC channel is how a node notices that the devnet died (see `node start`).
      stdio: ["ignore", "pipe", log.fd, "ipc"],
      // A process group of its own: Ctrl-C in a terminal signals the devnet's group only, and the
      // devnet then stops each node once; in the devnet's group a node got SIGINT and then the
      // devnet's SIGTERM, took that for a second signal and exited at once, unclean.
      detached: true,
      env: {
        ...process.env,
        DEEPSHARD_PASSPHRASE: DEVNET_PASSPHRASE,
        DEEPSHARD_WEIGHTS_ANNOUNCE_MS: "1000",
        ...options.env,
        ...spec.env,
      },
    });
    await log.close();
    this.#children.push(child);
    // The first line says where the node runs; one line per event follows. The devnet takes events
    // from each node's API instead (`#follow` resumes by id when a node restarts), so it drops those
    // lines, but it must keep reading them: a full pipe would block the node. The interface does,
    // for as long as the child's stdout is open.
    const lines = createInterface({ input: child.stdout! });
    const started = await new Promise<{ api: string; peerId: string; listen: string[] }>((ok, fail) => {
      const timer = setTimeout(
        () => fail(this.#failure(spec, "did not start in time")),
        options.startTimeoutMs ?? 120_000,
      );
      child.once("exit", (code) => {
        clearTimeout(timer);
        fail(this.#failure(spec, `exited with code ${code} while starting`));
      });
      lines.once("line", (line) => {
        clearTimeout(timer);
        try {
          ok(JSON.parse(line));
        } catch {
          fail(this.#failure(spec, `printed ${line.slice(0, 200)}`));
        }
      });
    });
    child.removeAllListeners("exit");
    const node: DevnetNode = { ...spec, ...started, pid: child.pid! };
    this.nodes.push(node);
    child.once("exit", (code, signal) => {
      if (!this.#stopped) {
        this.#emit({
          node: spec.name,
          event: { type: "devnet.node_exited", code, signal, log: join(spec.dataDir, "node.log") },
        });
      }
    });
    void this.#follow(node);
  }

  #failure(spec: DevnetNodeSpec, what: string): DevnetError {
    return new DevnetError("DEVNET_NODE_FAILED", `${spec.name} ${what}`, {
      details: `see ${join(spec.dataDir, "node.log")}`,
    });
  }

  #emit(e: DevnetEvent): void {
    for (const l of this.#listeners) l(e);
  }

  /** Reads the node's /events stream (server-sent events) until the devnet stops. */
  async #follow(node: DevnetNode): Promise<void> {
    let last = 0;
    while (!this.#aborts.signal.aborted) {
      try {
        const res = await fetch(`${node.api}/events?since=${last}`, { signal: this.#aborts.signal });
        const decoder = new TextDecoder();
        let buffer = "";
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf("\n\n");
            const id = /^id: (\d+)$/m.exec(frame);
            const data = /^data: (.*)$/m.exec(frame);
            if (!id || !data) continue;
            last = Number(id[1]);
            this.#emit({ node: node.name, event: JSON.parse(data[1]!) as NodeEvent });
          }
        }
      } catch {
        // The node is restarting or stopping: try again shortly.
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** SIGTERM to every node, SIGKILL to those still running after `timeoutMs`. */
  stop(timeoutMs = 15_000): Promise<void> {
    this.#stopped ??= (async () => {
      this.#aborts.abort();
      const live = this.#children.filter((c) => c.exitCode === null && c.signalCode === null);
      await Promise.all(
        live.map(
          (c) =>
            new Promise<void>((done) => {
              const timer = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
              c.once("exit", () => {
                clearTimeout(timer);
                done();
              });
              c.kill("SIGTERM");
            }),
        ),
      );
      process.off("exit", this.#exitHook);
    })();
    return this.#stopped;
  }
}
