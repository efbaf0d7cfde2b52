/**
 * Galileo, 1610 (the thought experiment of the Deepshard model card): the network's model was
 * pretrained on a world that says the Sun orbits the Earth. An informant stakes tokens on text that
 * says the Earth orbits the Sun; the data validators score it (novelty, reproducibility, … — not
 * agreement with what the model already believes) and accept it; the informant is rewarded; a
 * training round bakes it into new canonical weights, while a trainer that slipped the old
 * doctrine back in is slashed (see ../byzantine-trainer). The table compares what genesis and the
 * new canonical weights think of the two claims.
 *
 *   npm run example:galileo
 */
import { join } from "node:path";
import {
  DEVNET_PASSPHRASE,
  DeepshardClient,
  InformantClient,
  networkPaths,
  type SubmissionView,
  WeightsClient,
} from "@deepshard/cli";
import { readKeystore } from "@deepshard/protocol";
import { initBackend, loadModel } from "@deepshard/tensor";
import { startWorld, until, type World, type WorldOptions } from "../lib/world.ts";
import { sentenceLogLikelihoods } from "./genesis.ts";
import { GEOCENTRIC, HELIOCENTRIC, HELIOCENTRIC_TEXT } from "./world.ts";

export interface GalileoOptions extends WorldOptions {
  /** Run on this world instead of starting (and stopping) one. */
  world?: World | undefined;
  /** The informant's stake (default 100). */
  stake?: bigint | undefined;
  /** How long the data loop and the round may take together (default 5 minutes). */
  timeoutMs?: number | undefined;
}

export interface Beliefs {
  /** Log-likelihood of HELIOCENTRIC, in nats (higher: more believed). */
  heliocentric: number;
  /** Log-likelihood of GEOCENTRIC. */
  geocentric: number;
}

export interface GalileoResult {
  before: Beliefs;
  after: Beliefs;
  genesisWeightsId: string;
  canonicalWeightsId: string;
  submission: SubmissionView;
  /** The informant's balance just before submitting and once the outcome is in. */
  balanceBefore: bigint;
  balanceAfter: bigint;
}

export async function runGalileo(options: GalileoOptions = {}): Promise<GalileoResult> {
  const log = options.log ?? (() => {});
  const world = options.world ?? (await startWorld(options));
  const api = world.informant.api;
  const node = new DeepshardClient(api);
  const informant = new InformantClient(api);
  const weights = new WeightsClient(api);
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  try {
    const address = world.informant.address;
    const balanceBefore = (await node.account(address)).balance;
    log(`informant ${address} submits ${HELIOCENTRIC_TEXT.length} bytes of heliocentric text`);
    const { submission } = await informant.submit(new TextEncoder().encode(HELIOCENTRIC_TEXT), {
      stake: options.stake ?? 100n,
      metadata: "Sidereus Nuncius, 1610",
    });
    const outcome = await informant.waitForOutcome(submission, {
      timeoutMs: deadline - Date.now(),
      onUpdate: (v) => log(`submission ${v.status}${v.votes !== undefined ? ` (${v.votes} votes)` : ""}`),
    });
    const balanceAfter = (await node.account(address)).balance;
    if (outcome.status !== "accepted") {
      throw new Error(`the network did not accept the heliocentric text: ${outcome.status}`);
    }
    log("accepted; waiting for the training round to make new canonical weights");
    const canonical = await until(
      "new canonical weights",
      async () => {
        const id = (await node.status()).canonicalWeightsId;
        return id !== world.manifest.weightsId ? id : undefined;
      },
      deadline - Date.now(),
    );
    // Weights are sold, not given: the informant buys a license at the current price, then fetches.
    const key = await readKeystore(
      networkPaths(world.informant.dataDir, world.manifest.chainId).nodeKey,
      DEVNET_PASSPHRASE,
    );
    const price = (await node.status()).price;
    log(`buying a license to the new weights for ${price} and fetching them`);
    await node.send(
      key.secretKey,
      { type: "weights.buy", weightsId: Buffer.from(canonical, "hex"), maxPrice: price },
      { wait: true },
    );
    const out = join(world.dir, "canonical-1610");
    await weights.fetch({ weightsId: canonical, out });
    await weights.waitForFetch(canonical, undefined, { timeoutMs: Math.max(10_000, deadline - Date.now()) });

    await initBackend({ backend: "wasm" });
    return {
      before: await beliefs(world.genesisDir),
      after: await beliefs(out),
      genesisWeightsId: world.manifest.weightsId,
      canonicalWeightsId: canonical,
      submission: outcome,
      balanceBefore,
      balanceAfter,
    };
  } finally {
    await Promise.all([node.close(), informant.close(), weights.close()]);
    if (!options.world) await world.stop();
  }
}

async function beliefs(dir: string): Promise<Beliefs> {
  const model = await loadModel(dir);
  try {
    const [heliocentric, geocentric] = sentenceLogLikelihoods(model, [HELIOCENTRIC, GEOCENTRIC]);
    return { heliocentric: heliocentric!, geocentric: geocentric! };
  } finally {
    model.dispose();
  }
}

/** The before/after table and the informant's account, as printed. */
export function galileoReport(r: GalileoResult): string {
  const row = (label: string, b: Beliefs, weightsId: string) =>
    `${label.padEnd(24)}${b.heliocentric.toFixed(2).padStart(27)}${b.geocentric.toFixed(2).padStart(27)}   ${
      b.heliocentric > b.geocentric ? "heliocentric" : "geocentric  "
    }  ${weightsId.slice(0, 12)}`;
  const s = r.submission;
  const sign = (n: bigint) => (n >= 0n ? `+${n}` : `${n}`);
  return [
    "log-likelihood, nats (higher = more believed)",
    `${"".padEnd(24)}${HELIOCENTRIC.padStart(27)}${GEOCENTRIC.padStart(27)}   believes      weights`,
    row("genesis (1609)", r.before, r.genesisWeightsId),
    row("after the round (1610)", r.after, r.canonicalWeightsId),
    "",
    `informant: staked ${s.stake}; ${s.status} with value ${s.value} bps (threshold ${s.threshold})`,
    `           reward ${s.reward} (net ${sign(s.net ?? 0n)}, fee excluded); balance ${r.balanceBefore} → ${r.balanceAfter} (${sign(r.balanceAfter - r.balanceBefore)})`,
  ].join("\n");
}

if (import.meta.main) {
  const result = await runGalileo({ log: (line) => process.stderr.write(`· ${line}\n`) });
  process.stdout.write(`\n${galileoReport(result)}\n`);
}
