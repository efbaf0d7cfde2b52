/**
 * The devnet's demo: drives one whole cycle of the network so that a newcomer running
 * `deepshard devnet` sees it work, and tells it one line per step.
 *
 *   1. an informant submits a sample of true text; a second informant then submits a copy of it
 *      (the first is accepted and rewarded, the copy rejected and its stake slashed);
 *   2. the accepted data opens a training round: trainers train, commit, reveal; validators vote
 *      verdicts; the round settles (a dishonest trainer is slashed) and new canonical weights exist;
 *   3. the inference node buys a license (the price has risen), fetches the weights from the
 *      holders, and generates a sample text with them;
 *   4. every `repeatMs` the next sample goes in, so further rounds run, until the samples run out.
 *
 * The steps are the nodes' own events (`/events`, merged by `Devnet`) told in words, plus what the
 * demo polls (round opened, canonical weights) and does itself (license, fetch, generation).
 */
import { readFile } from "node:fs/promises";
import { parseGenesis } from "@deepshard/ledger";
import { encodeAddress, readKeystore } from "@deepshard/protocol";
import { DeepshardClient } from "./client.ts";
import { networkPaths } from "./datadir.ts";
import {
  DEVNET_PASSPHRASE,
  type Devnet,
  type DevnetEvent,
  type DevnetManifest,
  type DevnetNode,
  genesisModel,
} from "./devnet.ts";
import { DEVNET_SAMPLES, duplicateOf } from "./devnet-samples.ts";
import { InformantClient } from "./roles/informant/client.ts";
import { WeightsClient } from "./roles/storage/client.ts";

/** One step: the line for people, the record for `--json` (its `type` is `demo.<step>`). */
export type DemoSay = (line: string, record: { type: string } & Record<string, unknown>) => void;

export interface DemoOptions {
  say: DemoSay;
  /** Stake of each submission (default 100). */
  stake?: bigint;
  /** Wait before the first submission, so the nodes find each other (default 2 s). */
  startDelayMs?: number;
  /** After a cycle, the next sample goes in this much later; 0 stops after one (default 3 min). */
  repeatMs?: number;
  /** The devnet's folder: when given, the demo reports the loss of its genesis model and of the new weights. */
  dir?: string;
  samples?: readonly string[];
}

/**
 * `--byzantine`: the last trainer (not the only one) returns the base weights unchanged, which the
 * validators judge dishonest, so the round shows a slash.
 */
export function makeByzantine(manifest: DevnetManifest): DevnetManifest["nodes"][number] | undefined {
  const trainers = manifest.nodes.filter((n) => n.roles.includes("trainer"));
  const node = trainers.length > 1 ? trainers.at(-1) : undefined;
  if (node) node.env = { ...node.env, DEEPSHARD_TRAINER_BEHAVIOUR: "base" };
  return node;
}

/** Routine steps the story does without. */
const QUIET = new Set([
  "informant.included",
  "validator.fetched",
  "validator.corpus",
  "storage.stored",
  "storage.repair",
]);

type Told = [line: string, type: string, record: Record<string, unknown>];

const ROLE_EVENTS = new Set([
  "informant.submitted",
  "informant.outcome",
  "informant.failed",
  "validator.vote",
  "trainer.trained",
  "trainer.commit",
  "trainer.reveal",
  "trainer.failed",
  "trainer.outcome",
  "validator.weights_prepared",
  "validator.verdict",
  "validator.verdict_refused",
  "inference.fetched",
]);

const short = (id: string) => `${id.slice(0, 8)}…`;
const shortAddress = (a: string) => `${a.slice(0, 10)}…`;
const addressOfKey = (hex: string) => shortAddress(encodeAddress(Buffer.from(hex, "hex")));
const kib = (bytes: number) =>
  bytes < 1024
    ? `${bytes} B`
    : bytes < 1024 * 1024
      ? `${(bytes / 1024).toFixed(1)} KiB`
      : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const seconds = (ms: number) =>
  ms < 60_000
    ? `${(ms / 1000).toFixed(1)} s`
    : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;

export class DevnetDemo {
  readonly #devnet: Devnet;
  readonly #options: DemoOptions;
  readonly #say: DemoSay;
  readonly #abort = new AbortController();
  readonly #unsubscribe: () => void;
  readonly #clients: { close(): Promise<void> }[] = [];
  #trainingStake = 0n;
  #lastRound = -1;
  /** The canonical weights as last seen: a round's base. */
  #canonical: string;
  #run: Promise<void> = Promise.resolve();

  private constructor(devnet: Devnet, options: DemoOptions) {
    this.#devnet = devnet;
    this.#options = options;
    this.#say = options.say;
    this.#canonical = devnet.manifest.weightsId;
    this.#unsubscribe = devnet.subscribe((e) => this.#narrate(e));
  }

  /** Starts the demo on a running devnet; it runs until `stop()`. */
  static start(devnet: Devnet, options: DemoOptions): DevnetDemo {
    const demo = new DevnetDemo(devnet, options);
    demo.#run = demo.#main().catch((err: unknown) => {
      if (!demo.#abort.signal.aborted) demo.#fail("the demo", err);
    });
    return demo;
  }

  /**
   * Whether the demo tells this event itself (role events it narrates, and successful
   * transactions, which the narrative covers): the devnet's raw view then leaves it out.
   */
  narrates({ event }: DevnetEvent): boolean {
    return ROLE_EVENTS.has(event.type) || QUIET.has(event.type) || (event.type === "tx" && event.code === 0);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#unsubscribe();
    await this.#run;
    await Promise.allSettled(this.#clients.map((c) => c.close()));
  }

  #client<T extends { close(): Promise<void> }>(client: T): T {
    this.#clients.push(client);
    return client;
  }

  #fail(step: string, err: unknown): void {
    const e = err as { shortMessage?: unknown; message?: unknown; details?: unknown };
    const message = String(e.shortMessage ?? e.message ?? err);
    this.#say(`demo: ${step} failed: ${message}${typeof e.details === "string" ? ` (${e.details})` : ""}`, {
      type: "demo.error",
      step,
      message,
    });
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#abort.signal;
    return new Promise((done) => {
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        done();
      });
    });
  }

  async #main(): Promise<void> {
    const nodes = this.#devnet.nodes;
    const informants = nodes.filter((n) => n.roles.includes("informant"));
    const inference = nodes.find((n) => n.roles.includes("inference"));
    const trainer = nodes.find((n) => n.roles.includes("trainer"));
    if (informants.length === 0) {
      this.#say("demo: no informant node, nothing to submit (pass --no-demo to hide this)", {
        type: "demo.skipped",
        reason: "no informant",
      });
      return;
    }
    const chain = this.#client(new DeepshardClient(nodes[0]!.api));
    const genesis = parseGenesis(
      JSON.parse(
        await readFile(networkPaths(nodes[0]!.dataDir, this.#devnet.manifest.chainId).genesis, "utf8"),
      ),
    );
    this.#trainingStake = genesis.params.training.stake;
    await this.#sleep(this.#options.startDelayMs ?? 2_000);
    const watcher = this.#watch(chain, trainer);
    const samples = this.#options.samples ?? DEVNET_SAMPLES;
    const stake = this.#options.stake ?? 100n;
    const priceAtStart = (await chain.status()).price;
    const accepted: string[] = [];
    for (let i = 0; i < samples.length && !this.#abort.signal.aborted; i++) {
      const started = Date.now();
      const before = (await chain.status()).canonicalWeightsId;
      const author = informants[i % informants.length]!;
      const good = await this.#submit(author, samples[i]!, stake);
      if (good?.status === "accepted") accepted.push(samples[i]!);
      if (i === 0 && good?.status === "accepted") {
        await this.#submit(informants[1] ?? author, duplicateOf(samples[i]!), stake + stake / 2n);
      }
      if (good?.status !== "accepted" || !trainer) {
        if (!trainer) this.#say("demo: no trainer node, so no training round", { type: "demo.skipped" });
        break;
      }
      const canonical = await this.#until(async () => {
        const id = (await chain.status()).canonicalWeightsId;
        return id !== before ? id : undefined;
      });
      if (canonical === undefined) return;
      if (inference) await this.#infer(chain, inference, canonical, priceAtStart, accepted);
      const repeatMs = this.#options.repeatMs ?? 180_000;
      const more = i + 1 < samples.length && repeatMs > 0;
      this.#say(
        `demo: cycle ${i + 1} done in ${seconds(Date.now() - started)}; the devnet keeps running` +
          (more ? `, the next sample goes in ${seconds(repeatMs)} from now` : " (Ctrl-C stops it)"),
        { type: "demo.cycle_done", cycle: i + 1, ms: Date.now() - started },
      );
      if (!more) break;
      await this.#sleep(repeatMs);
    }
    await watcher;
  }

  /** Polls `check` every second until it answers, or the demo stops (undefined). */
  async #until<T>(check: () => Promise<T | undefined>): Promise<T | undefined> {
    while (!this.#abort.signal.aborted) {
      try {
        const value = await check();
        if (value !== undefined) return value;
      } catch {
        // A node busy or restarting: ask again.
      }
      await this.#sleep(1_000);
    }
    return undefined;
  }

  /** Tells what the ledger shows without an event: a round opened, new canonical weights. */
  async #watch(chain: DeepshardClient, trainer: DevnetNode | undefined): Promise<void> {
    const trainerClient = trainer ? this.#client(new WeightsClient(trainer.api)) : undefined;
    while (!this.#abort.signal.aborted) {
      try {
        const status = await chain.status();
        if (status.canonicalWeightsId !== this.#canonical) {
          const canonical = status.canonicalWeightsId;
          this.#canonical = canonical;
          this.#say(`canonical weights ${short(canonical)} (price now ${status.price})`, {
            type: "demo.canonical",
            weightsId: canonical,
            height: status.height,
            price: status.price,
          });
        }
        const active = trainerClient ? (await trainerClient.trainerStatus()).activeRound : undefined;
        const round = active as
          | {
              id: number;
              batch: number;
              baseWeightsId: string;
              commitEnd: number;
              revealEnd: number;
              verdictEnd: number;
            }
          | null
          | undefined;
        if (round && round.id > this.#lastRound) {
          this.#lastRound = round.id;
          this.#say(
            `round ${round.id} opened: ${round.batch} accepted data, base weights ${short(round.baseWeightsId)}; ` +
              `commits until height ${round.commitEnd}, reveals until ${round.revealEnd}, verdicts until ${round.verdictEnd}`,
            { type: "demo.round_opened", ...round },
          );
        }
      } catch {
        // Asked again next second.
      }
      await this.#sleep(1_000);
    }
  }

  /** Submits `text` from `node` and waits for its outcome (narrated from the node's events). */
  async #submit(node: DevnetNode, text: string, stake: bigint) {
    const informant = this.#client(new InformantClient(node.api));
    try {
      const sent = await informant.submit(new TextEncoder().encode(text), { stake });
      return await informant.waitForOutcome(sent.submission, { signal: this.#abort.signal, pollMs: 500 });
    } catch (err) {
      if (!this.#abort.signal.aborted) this.#fail(`the submission from ${node.name}`, err);
      return undefined;
    }
  }

  /** License, fetch, loss before and after, one generated sample. */
  async #infer(
    chain: DeepshardClient,
    node: DevnetNode,
    weightsId: string,
    priceAtStart: bigint,
    accepted: string[],
  ): Promise<void> {
    const weights = this.#client(new WeightsClient(node.api));
    const key = await readKeystore(
      networkPaths(node.dataDir, this.#devnet.manifest.chainId).nodeKey,
      DEVNET_PASSPHRASE,
    );
    const who = `inference ${shortAddress(node.address)}`;
    let price = 0n;
    for (let attempt = 1; ; attempt++) {
      try {
        price = (await chain.status()).price;
        await chain.send(
          key.secretKey,
          { type: "weights.buy", weightsId: Buffer.from(weightsId, "hex"), maxPrice: price },
          { wait: true },
        );
        break;
      } catch (err) {
        // Another transaction of this node's key may have taken the nonce, or the price moved.
        if (attempt >= 3 || this.#abort.signal.aborted) return this.#fail("buying a license", err);
        await this.#sleep(1_000);
      }
    }
    this.#say(`price ${priceAtStart} → ${price}`, { type: "demo.price", before: priceAtStart, after: price });
    this.#say(`${who} bought a license to ${short(weightsId)} for ${price}`, {
      type: "demo.license",
      buyer: node.address,
      weightsId,
      price,
    });
    const started = Date.now();
    let told = 0;
    let job: Awaited<ReturnType<WeightsClient["waitForFetch"]>>;
    try {
      await weights.fetch({ weightsId });
      job = await weights.waitForFetch(weightsId, (j) => {
        if (j.chunksTotal === 0 || j.state !== "fetching") return;
        const quarter = Math.floor((4 * j.chunksDone) / j.chunksTotal);
        if (quarter <= told || j.chunksDone === j.chunksTotal) return;
        told = quarter;
        this.#say(
          `  fetching ${short(weightsId)}: ${j.chunksDone}/${j.chunksTotal} chunks, ${kib(j.bytesDone)}`,
          {
            type: "demo.fetch_progress",
            chunksDone: j.chunksDone,
            chunksTotal: j.chunksTotal,
            bytesDone: j.bytesDone,
          },
        );
      });
    } catch (err) {
      return this.#fail("fetching the weights", err);
    }
    const holders = Object.keys(job.peers).length;
    this.#say(
      `${who} fetched ${job.chunksTotal} chunks (${kib(job.bytesTotal)}) from ${holders} holder${holders === 1 ? "" : "s"} ` +
        `in ${seconds(Date.now() - started)}, each checked against the weights id`,
      {
        type: "demo.fetched",
        weightsId,
        chunks: job.chunksTotal,
        bytes: job.bytesTotal,
        holders,
        source: job.source,
      },
    );
    if (this.#options.dir && job.dir) {
      const genesis = await genesisModel(this.#options.dir, this.#devnet.manifest.recipe);
      await this.#loss(genesis, job.dir, accepted, weightsId);
    }
    const prompt = accepted.at(-1)!.split(" ").slice(0, 3).join(" ");
    try {
      const out = await weights.generate({ prompt, maxTokens: 48, seed: 1, temperature: 0.7 });
      const text = `${prompt}${out.text}`.replace(/\s+/g, " ").trim();
      this.#say(`sample: "${text}"`, { type: "demo.sample", prompt, text, weightsId: out.weightsId });
    } catch (err) {
      this.#fail("generating a sample", err);
    }
  }

  /** The mean loss of the genesis model and of the new weights on the accepted texts. */
  async #loss(genesisDir: string, newDir: string, texts: string[], weightsId: string): Promise<void> {
    try {
      const { evaluateTexts, initBackend, loadModel } = await import("@deepshard/tensor");
      await initBackend({ backend: "wasm" });
      const losses: number[] = [];
      for (const dir of [genesisDir, newDir]) {
        const model = await loadModel(dir);
        try {
          losses.push(evaluateTexts(model, texts).meanCrossEntropy);
        } finally {
          model.dispose();
        }
      }
      const [before, after] = losses as [number, number];
      this.#say(
        `loss on the accepted data: ${before.toFixed(3)} with genesis → ${after.toFixed(3)} with ${short(weightsId)}`,
        {
          type: "demo.loss",
          before,
          after,
          weightsId,
        },
      );
    } catch (err) {
      this.#fail("measuring the loss", err);
    }
  }

  /** One line for each role event worth telling. */
  #narrate(e: DevnetEvent): void {
    const told = this.#tell(e);
    if (told) this.#say(told[0], { type: told[1], node: e.node, ...told[2] });
  }

  #tell({ node, event }: DevnetEvent): Told | undefined {
    const e = event as Record<string, unknown> & { type: string };
    const spec = this.#devnet.nodes.find((n) => n.name === node);
    const me = spec ? shortAddress(spec.address) : node;
    const say = (line: string, type: string, extra: Record<string, unknown> = {}): Told => [
      line,
      type,
      extra,
    ];
    switch (e.type) {
      case "informant.submitted":
        return say(
          `informant ${me} submitted ${kib(Number(e.size))} (stake ${e.stake}) as data ${short(String(e.contentHash))}`,
          "demo.submitted",
          { submission: e.submission, contentHash: e.contentHash, size: e.size, stake: e.stake },
        );
      case "informant.outcome": {
        const data = `data ${short(String(e.contentHash))}`;
        const extra = {
          submission: e.submission,
          contentHash: e.contentHash,
          value: e.value,
          threshold: e.threshold,
        };
        if (e.status === "accepted") {
          return say(
            `${data} accepted: value ${e.value} ≥ threshold ${e.threshold}, stake back, reward ${e.reward}`,
            "demo.accepted",
            { ...extra, reward: e.reward },
          );
        }
        if (e.status === "rejected") {
          return say(
            `${data} rejected: value ${e.value} < threshold ${e.threshold}, informant ${me} slashed ${e.stake}`,
            "demo.rejected",
            { ...extra, slashed: e.stake },
          );
        }
        return say(`${data} ${e.status}`, `demo.${e.status}`, extra);
      }
      case "informant.failed":
        return say(`informant ${me}: the submission failed: ${e.log}`, "demo.submit_failed", { log: e.log });
      case "validator.vote":
        return say(
          `  validator ${me} scored data ${short(String(e.contentHash))}: value ${e.combined}` +
            (e.verdict === "scored" ? "" : ` (${e.verdict}${e.reason ? `: ${e.reason}` : ""})`),
          "demo.vote",
          { contentHash: e.contentHash, combined: e.combined, verdict: e.verdict },
        );
      case "trainer.trained":
        if (e.weightsId === this.#canonical) {
          return say(
            `trainer ${me} did not train round ${e.round}: it offers the base weights ${short(String(e.weightsId))} unchanged`,
            "demo.trained",
            { round: e.round, weightsId: e.weightsId, steps: e.steps, unchanged: true },
          );
        }
        return say(
          `trainer ${me} trained round ${e.round}: ${e.steps} steps → weights ${short(String(e.weightsId))}`,
          "demo.trained",
          { round: e.round, weightsId: e.weightsId, steps: e.steps },
        );
      case "trainer.commit":
        return say(`trainer ${me} committed (round ${e.round})`, "demo.committed", { round: e.round });
      case "trainer.reveal":
        return say(
          `trainer ${me} revealed weights ${short(String(e.weightsId))} (round ${e.round})`,
          "demo.revealed",
          {
            round: e.round,
            weightsId: e.weightsId,
          },
        );
      case "trainer.failed":
        return say(`trainer ${me} failed round ${e.round}: ${e.error}`, "demo.trainer_failed", {
          round: e.round,
        });
      case "validator.weights_prepared": {
        const replicas = (e.replicas as { ms: number }[] | undefined) ?? [];
        const ms = replicas.reduce((a, r) => Math.max(a, r.ms), 0);
        return say(
          `  validator ${me} trained ${replicas.length} reference replica${replicas.length === 1 ? "" : "s"} for round ${e.round} (${seconds(ms)})`,
          "demo.references",
          { round: e.round, replicas: replicas.length },
        );
      }
      case "validator.verdict": {
        const verdicts = (e.verdicts as { trainer: string; accept: boolean; reasons: string[] }[]) ?? [];
        const told = verdicts
          .map(
            (v) => `${addressOfKey(v.trainer)} ${v.accept ? "accept" : `reject (${v.reasons.join(", ")})`}`,
          )
          .join("; ");
        return say(`verdict by validator ${me} on round ${e.round}: ${told}`, "demo.verdict", {
          round: e.round,
          verdicts: verdicts.map((v) => ({ ...v, trainer: encodeAddress(Buffer.from(v.trainer, "hex")) })),
        });
      }
      case "validator.verdict_refused":
        return say(`validator ${me}: its verdict was refused: ${e.error}`, "demo.verdict_refused", {
          round: e.round,
        });
      case "trainer.outcome": {
        const outcome = String(e.outcome);
        const what =
          outcome === "slashed"
            ? `slashed ${this.#trainingStake}`
            : outcome === "rewarded"
              ? `rewarded${e.canonical ? " (its weights are the new canonical ones)" : ""}`
              : outcome.replace("_", " ");
        return say(`trainer ${me} ${what} (round ${e.round})`, "demo.trainer_outcome", {
          round: e.round,
          outcome,
          canonical: e.canonical,
        });
      }
      default:
        return undefined;
    }
  }
}
