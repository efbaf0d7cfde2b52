/**
 * `deepshard inference serve`: the OpenAI-compatible server (src/node/serve) over a model folder.
 * With `--model <dir>` it serves that folder; its id is the weights id the network would give it
 * (the folder name when it is a node's model cache entry, `<network>/models/<weightsId>`, else
 * computed by chunking the folder). Without `--model` it asks the running node's inference role for
 * the canonical weights (or `--weights-id`): the folder it already fetched, else it starts the fetch
 * (which needs a license: `deepshard weights buy`) and waits for it. Serving the canonical weights,
 * it follows them: every `--follow-every` seconds it asks the node which weights are canonical, and
 * when a round has made new ones it fetches them (a license for them is needed too), loads them and
 * switches between generations, telling stdout; until then, and whenever that fails, it keeps
 * serving what it has and says why on stderr, once per cause.
 */
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DeepshardError } from "@deepshard/protocol";
import { type CausalLM, loadModel, tokenizerFor } from "@deepshard/tensor";
import { exists } from "../../node/datadir.ts";
import { WeightsClient } from "../../node/roles/storage/client.ts";
import { chunkModel } from "../../node/roles/storage/models.ts";
import { type OpenAIServer, startOpenAIServer } from "../../node/serve/index.ts";
import type { BackendCliOptions } from "../model/load.ts";
import { checkModelDir, openModel } from "../model/load.ts";
import { type ApiOptions, resolveApiUrl } from "../node/common.ts";

export interface ServeCliOptions extends ApiOptions, BackendCliOptions {
  model?: string;
  weightsId?: string;
  port: number;
  host: string;
  name?: string;
  maxTokens: number;
  maxPromptTokens?: number;
  queue: number;
  /** Without --model or --weights-id: switch to new canonical weights (`--no-follow`: false). */
  follow: boolean;
  /** Seconds between asking the node for the canonical weights. */
  followEvery: number;
}

const WEIGHTS_ID = /^[0-9a-f]{64}$/;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/** Serves until SIGINT/SIGTERM; returns the exit code. */
export async function serveHandler(options: ServeCliOptions): Promise<number> {
  if (options.model !== undefined && options.weightsId !== undefined) {
    throw new DeepshardError("USAGE", "give either --model or --weights-id, not both");
  }
  if (options.weightsId !== undefined && !WEIGHTS_ID.test(options.weightsId)) {
    throw new DeepshardError("BAD_WEIGHTS_ID", "--weights-id is 64 lower-case hex digits");
  }
  const fetched = options.model === undefined ? await fetchedModel(options) : undefined;
  const dir = fetched?.dir ?? resolve(options.model!);
  const { model, backend } = await openModel(dir, options);
  let served = model;
  const stopFollowing = new AbortController();
  let follower: Promise<void> = Promise.resolve();
  try {
    const tokenizer = tokenizerFor(model.config);
    const weightsId = fetched?.weightsId ?? (await localWeightsId(dir));
    // Signals that arrive while the server starts stop it as soon as it listens.
    let stop: () => void = () => {};
    const stopped = new Promise<void>((r) => {
      stop = r;
    });
    process.once("SIGINT", () => stop());
    process.once("SIGTERM", () => stop());
    const server = await startOpenAIServer({
      model,
      tokenizer,
      modelId: options.name ?? weightsId,
      port: options.port,
      host: options.host,
      limits: {
        maxTokens: options.maxTokens,
        maxQueue: options.queue,
        ...(options.maxPromptTokens === undefined ? {} : { maxPromptTokens: options.maxPromptTokens }),
      },
    });
    if (!LOOPBACK.has(options.host)) {
      process.stderr.write(
        `warning: listening on ${options.host}: anyone who reaches this port can use the model (there is no API key)\n`,
      );
    }
    if (server.chatTemplateIgnored || (await hasChatTemplate(dir))) {
      process.stderr.write(
        "note: the model's chat_template is not rendered; chat messages use the plain 'User: …' / 'Assistant:' template\n",
      );
    }
    const info = {
      url: server.url,
      model: server.modelId,
      weightsId,
      host: server.host,
      port: server.port,
      dir,
      backend: backend.name,
      limits: server.limits,
      following: fetched !== undefined && options.weightsId === undefined && options.follow !== false,
    };
    if (options.json) process.stdout.write(`${JSON.stringify(info)}\n`);
    else {
      process.stdout.write(
        `serving ${server.modelId} at ${server.url} (OpenAI API: /models, /completions, /chat/completions; ` +
          `backend ${backend.name}); Ctrl-C stops\n`,
      );
    }
    if (info.following) {
      follower = follow(server, options, weightsId, stopFollowing.signal, (next) => {
        served = next;
      }).catch((err: unknown) => {
        process.stderr.write(`stopped following the canonical weights: ${String(err)}\n`);
      });
    }
    await stopped;
    stopFollowing.abort();
    // Closing cancels generations, so a switch waiting for one gives up at once.
    await server.close();
    await follower;
    return 0;
  } finally {
    stopFollowing.abort();
    await follower;
    served.dispose();
  }
}

/**
 * Switches `server` to the canonical weights whenever they change, until `signal`; a switch or a
 * failure to make one is told once (see the file's comment). `onModel` gets each model switched to.
 */
async function follow(
  server: OpenAIServer,
  options: ServeCliOptions,
  weightsId: string,
  signal: AbortSignal,
  onModel: (model: CausalLM) => void,
): Promise<void> {
  const client = new WeightsClient(await resolveApiUrl(options));
  const told = new Set<string>();
  let serving = weightsId;
  try {
    while (!signal.aborted) {
      await sleep(options.followEvery * 1000, undefined, { signal }).catch(() => {});
      if (signal.aborted) break;
      let canonical = serving;
      try {
        canonical = (await client.inferenceStatus()).canonicalWeightsId;
        if (canonical === serving) {
          // All is well again: a problem that comes back is told again.
          told.clear();
          continue;
        }
        const dir = await fetchThrough(client, canonical, signal);
        await checkModelDir(dir);
        const model = await loadModel(dir);
        let previous: CausalLM;
        try {
          previous = await server.swap({
            model,
            tokenizer: tokenizerFor(model.config),
            modelId: options.name ?? canonical,
          });
        } catch (err) {
          model.dispose();
          throw err;
        }
        onModel(model);
        previous.dispose();
        serving = canonical;
        const event = { event: "switched", model: server.modelId, weightsId: canonical, dir };
        process.stdout.write(
          options.json
            ? `${JSON.stringify(event)}\n`
            : `now serving ${server.modelId} (the network's new canonical weights ${canonical})\n`,
        );
      } catch (err) {
        if (signal.aborted) break;
        const e = err instanceof DeepshardError ? err : undefined;
        const cause = `${canonical}/${e?.code ?? "FAILED"}`;
        if (told.has(cause)) continue;
        told.add(cause);
        const why = e ? `${e.shortMessage}${e.details ? ` (${e.details})` : ""}` : String(err);
        process.stderr.write(
          canonical === serving
            ? `cannot ask the node for the canonical weights, still serving ${serving.slice(0, 16)}…: ${why}\n`
            : `the canonical weights are now ${canonical.slice(0, 16)}…, still serving ${serving.slice(0, 16)}…: ${why}\n`,
        );
      }
    }
  } finally {
    await client.close();
  }
}

/** The folder's weights id: its name in a node's model cache, else computed as the network does. */
async function localWeightsId(dir: string): Promise<string> {
  const name = basename(dir);
  if (WEIGHTS_ID.test(name)) return name;
  return (await chunkModel(dir)).weightsId;
}

async function hasChatTemplate(dir: string): Promise<boolean> {
  try {
    const json = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    return json.chat_template !== undefined;
  } catch {
    return false;
  }
}

/** The folder the local node's inference role fetched, fetching it first when needed. */
async function fetchedModel(options: ServeCliOptions): Promise<{ dir: string; weightsId: string }> {
  const client = new WeightsClient(await resolveApiUrl(options));
  try {
    const id = options.weightsId ?? (await client.inferenceStatus()).canonicalWeightsId;
    return { dir: await fetchThrough(client, id), weightsId: id };
  } finally {
    await client.close();
  }
}

/** The folder of `id` on this machine: the node's, fetched first when needed. */
async function fetchThrough(client: WeightsClient, id: string, signal?: AbortSignal): Promise<string> {
  const status = await client.inferenceStatus();
  const done = status.fetches.find((j) => j.weightsId === id && j.state === "done" && j.dir !== null);
  if (done) return onThisMachine(done.dir!, client.url);
  // Asked first, told after: a node that refuses (no license) prints only its refusal.
  const started = await client.fetch({ weightsId: id });
  process.stderr.write(`fetching weights ${id.slice(0, 16)}… through the node at ${client.url}\n`);
  const job = await client.waitForFetch(started.weightsId, undefined, signal ? { signal } : {});
  if (job.dir === null) throw new DeepshardError("NO_MODEL", `the node fetched ${id} but reports no folder`);
  return onThisMachine(job.dir, client.url);
}

/** The node's model folder, read from this process: only a node on this machine's disk will do. */
async function onThisMachine(dir: string, api: string): Promise<string> {
  if (await exists(join(dir, "config.json"))) return dir;
  throw new DeepshardError(
    "MODEL_NOT_LOCAL",
    `the node at ${api} keeps the weights in ${dir}, not found here`,
    {
      details: "run inference serve on the node's machine, or pass --model with a copy of that folder",
    },
  );
}
