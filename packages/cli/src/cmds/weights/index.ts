import { DeepshardError } from "@deepshard/protocol";
import type { Command } from "commander";
import { ClientError } from "../../node/client.ts";
import type { FetchJob } from "../../node/roles/inference/index.ts";
import { WeightsClient } from "../../node/roles/storage/client.ts";
import { parseAmount } from "../../node/tx.ts";
import { printResult } from "../../util/output.ts";
import { createProgress, type Progress } from "../../util/progress.ts";
import { addSendOptions, describeSent, type SendFlags, sendOptions } from "../ledger/index.ts";
import { type ApiOptions, addApiOptions, resolveApiUrl, signingKey, withClient } from "../node/common.ts";

const WEIGHTS_ID = /^[0-9a-f]{64}$/;

function weightsIdArg(text: string | undefined, what = "weights id"): string | undefined {
  if (text === undefined) return undefined;
  const id = text.toLowerCase();
  if (!WEIGHTS_ID.test(id)) {
    throw new DeepshardError("BAD_WEIGHTS_ID", `the ${what} is 64 hex digits`, {
      details: `got "${text.slice(0, 80)}"`,
    });
  }
  return id;
}

async function withWeights<T>(options: ApiOptions, fn: (client: WeightsClient) => Promise<T>): Promise<T> {
  const client = new WeightsClient(await resolveApiUrl(options));
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

const short = (id: string) => (id ? `${id.slice(0, 16)}…` : "(none)");

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(bytes < 1024 * 1024 ? 3 : 1)} MiB`;
}

interface BuyFlags extends SendFlags {
  maxPrice?: string;
}

interface FetchFlags extends ApiOptions {
  out?: string;
}

/** `deepshard weights price|buy|fetch|inspect`: the model's price, licenses, copies and holders. */
export function registerWeights(program: Command): void {
  const weights = program
    .command("weights")
    .description("the model's weights: price, license, fetching a copy, and who holds it");

  addApiOptions(
    weights
      .command("price")
      .description("the current price of a license and the network's accumulated value"),
  ).action(async (options: ApiOptions) => {
    const result = await withWeights(options, async (client) => {
      try {
        const o = await client.overview();
        return {
          price: o.price,
          accumulatedValue: o.accumulatedValue as bigint | null,
          canonicalWeightsId: o.canonicalWeightsId,
          height: o.height,
        };
      } catch (err) {
        if (!(err instanceof ClientError && err.code === "ROLE_NOT_RUNNING")) throw err;
        // A node without a weights role still knows the price from its status.
        const s = await withClient(options, (c) => c.status());
        return {
          price: s.price,
          accumulatedValue: null,
          canonicalWeightsId: s.canonicalWeightsId,
          height: s.height,
        };
      }
    });
    printResult(options, result, () =>
      [
        `price ${result.price} (a license to the canonical weights ${short(result.canonicalWeightsId)})`,
        result.accumulatedValue === null
          ? "accumulated value: ask a node running the trainer, storage or inference role"
          : `accumulated value ${result.accumulatedValue} (the price rises exponentially with it and never falls)`,
      ].join("\n"),
    );
  });

  addSendOptions(
    weights
      .command("buy")
      .description("buy a license to the weights at the current price (weights.buy); holders then serve you")
      .argument("[weightsId]", "the weights to license (default: the canonical weights)")
      .option("--max-price <amount>", "refuse if the price is above this (default: the current price)"),
  ).action(async (id: string | undefined, options: BuyFlags) => {
    const weightsId = weightsIdArg(id);
    const maxPrice =
      options.maxPrice === undefined ? undefined : parseAmount(options.maxPrice, "--max-price");
    const opts = { ...sendOptions(options), wait: true };
    const key = await signingKey(options);
    const result = await withClient(options, async (client) => {
      const status = await client.status();
      const target = weightsId ?? status.canonicalWeightsId;
      if (maxPrice !== undefined && status.price > maxPrice) {
        throw new DeepshardError(
          "PRICE_ABOVE_MAX",
          `the price is ${status.price}, above --max-price ${maxPrice}`,
          {
            details: "nothing was sent; the price never falls",
          },
        );
      }
      const sent = await client.send(
        key,
        { type: "weights.buy", weightsId: Buffer.from(target, "hex"), maxPrice: maxPrice ?? status.price },
        opts,
      );
      return { weightsId: target, price: status.price, ...sent };
    });
    printResult(options, result, () =>
      [
        describeSent(`license to ${short(result.weightsId)} at ${result.price}`, result),
        "fetch it with: deepshard weights fetch",
      ].join("\n"),
    );
  });

  addApiOptions(
    weights
      .command("fetch")
      .description(
        "fetch the licensed weights from several holders in parallel, every chunk checked against the weights id " +
          "(through a node running the inference role); progress on stderr",
      )
      .option("--weights-id <id>", "which weights (default: the canonical weights)")
      .option("--out <dir>", "also copy the assembled model folder here"),
  ).action(async (options: FetchFlags & { weightsId?: string }) => {
    const weightsId = weightsIdArg(options.weightsId, "--weights-id");
    const job = await withWeights(options, async (client) => {
      const started = await client.fetch({ weightsId, out: options.out });
      let progress: Progress | undefined;
      try {
        return await client.waitForFetch(started.weightsId, (j: FetchJob) => {
          if (!progress && j.chunksTotal > 0) {
            progress = createProgress({ unit: "chunk", total: j.chunksTotal, silent: options.json });
          }
          progress?.update(j.chunksDone, `${mib(j.bytesDone)} from ${Object.keys(j.peers).length} holders`);
        });
      } finally {
        progress?.stop();
      }
    });
    const holders = Object.entries(job.peers).map(([peer, s]) => ({ peer, ...s }));
    const result = {
      weightsId: job.weightsId,
      dir: job.dir,
      out: job.out,
      source: job.source,
      chunks: job.chunksTotal,
      bytes: job.bytesTotal,
      seconds: job.finishedAt === null ? null : (job.finishedAt - job.startedAt) / 1000,
      holders,
    };
    printResult(options, result, () =>
      [
        `fetched ${short(result.weightsId)}: ${result.chunks} chunks, ${mib(result.bytes)}` +
          (result.source === "peers"
            ? ` from ${holders.length} holders, every chunk verified`
            : ` (${result.source})`),
        `model folder: ${result.out ?? result.dir}`,
        `generate with: deepshard generate --model ${result.out ?? result.dir} "…"`,
      ].join("\n"),
    );
  });

  addApiOptions(
    weights
      .command("inspect")
      .description("the canonical weights id, its history, its holders and replication health")
      .argument("[weightsId]", "which weights (default: the canonical weights)"),
  ).action(async (id: string | undefined, options: ApiOptions) => {
    const result = await withWeights(options, async (client) => {
      const overview = await client.overview();
      const inspection = await client.inspect(weightsIdArg(id) ?? overview.canonicalWeightsId);
      return { ...inspection, canonicalWeightsId: overview.canonicalWeightsId, history: overview.history };
    });
    const r = result.replication;
    printResult(options, result, () =>
      [
        `weights ${result.weightsId}${result.canonical ? " (canonical)" : ""}`,
        result.record
          ? `canonical since height ${result.record.height} (${result.record.round < 0 ? "genesis" : `round ${result.record.round}`})`
          : "never canonical",
        `chunks ${result.chunkCount ?? "unknown"}; this node ${result.licensed ? "holds" : "holds no"} license`,
        r
          ? `replication: at least ${r.min} holders per chunk (target ${r.target}); ${r.underReplicated} under target, ${r.missing} with none; ${r.placed}/${result.chunkCount} chunks where placement puts them over ${r.storageSet.length} storage nodes`
          : "replication: no holder known",
        "holders:",
        ...result.holders.map(
          (h) => `  ${h.peerId}${h.self ? " (this node)" : ""}  ${h.chunks} chunks  ${h.roles.join(",")}`,
        ),
        "history:",
        ...result.history.map(
          (h) =>
            `  #${h.index} ${h.weightsId} ${h.round < 0 ? "genesis" : `round ${h.round}`} height ${h.height}`,
        ),
      ].join("\n"),
    );
  });
}
