/**
 * A Byzantine trainer: in a training round one trainer (DEEPSHARD_TRAINER_BEHAVIOUR=poison, a demo
 * knob of the trainer role) trains on the accepted batch plus text the network never accepted ("The
 * Sun orbits the Earth." many times over) and submits those weights. Every validator replays the
 * round's recipe into reference replicas, fingerprints each submission against them on probes drawn
 * after the commit window, and sends a verdict with its reasons; with two thirds of the bonded stake
 * rejecting, the trainer's escrowed stake is slashed and the honest trainers' weights become
 * canonical.
 *
 *   npm run example:byzantine-trainer
 */
import { DeepshardClient, InformantClient, WeightsClient } from "@deepshard/cli";
import { HELIOCENTRIC_TEXT } from "../galileo/world.ts";
import { startWorld, until, type World, type WorldOptions } from "../lib/world.ts";

export interface ByzantineOptions extends WorldOptions {
  /** Run on this world instead of starting (and stopping) one; a round it already settled is reported. */
  world?: World | undefined;
  /** How long the data loop and the round may take together (default 5 minutes). */
  timeoutMs?: number | undefined;
}

export interface TrainerReport {
  node: string;
  address: string;
  behaviour: string;
  weightsId: string;
  outcome: string;
  canonical: boolean;
}

export interface ValidatorVerdict {
  node: string;
  address: string;
  accept: boolean;
  reasons: string[];
  /** The judge's suspicion score (> 1 rejects), when it could judge. */
  score: number | null;
  mode: string;
}

export interface ByzantineResult {
  round: number;
  /** What the round escrowed from each trainer; the slashed one forfeits it. */
  stake: bigint;
  trainers: TrainerReport[];
  /** Each validator's verdict on the poisoner's weights. */
  verdicts: ValidatorVerdict[];
  canonicalWeightsId: string;
}

interface JournalEntry {
  round: number;
  weightsId: string;
  behaviour: string;
  outcome?: string;
  canonical?: boolean;
}

interface VerdictRecord {
  round: number;
  mode: string;
  verdicts: { weightsId: string; accept: boolean; reasons: string[]; score: number | null }[];
}

export async function runByzantine(options: ByzantineOptions = {}): Promise<ByzantineResult> {
  const log = options.log ?? (() => {});
  const world = options.world ?? (await startWorld(options));
  const trainerNodes = [...world.honestTrainers, world.poisoner];
  const trainers = trainerNodes.map((n) => new WeightsClient(n.api));
  const node = new DeepshardClient(world.informant.api);
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  try {
    const journal = async (i: number) =>
      ((await trainers[i]!.trainerStatus()).rounds as JournalEntry[] | undefined) ?? [];
    // The latest round every trainer took part in and that closed with every outcome known.
    const settledRound = async () => {
      const all = await Promise.all(trainerNodes.map((_, i) => journal(i)));
      for (const bad of all.at(-1)!) {
        if (!bad.outcome) continue;
        const rows = all.map((entries) => entries.find((e) => e.round === bad.round));
        if (rows.every((r) => r?.outcome)) return rows as JournalEntry[];
      }
      return undefined;
    };
    let rows = await settledRound();
    if (!rows) {
      const informant = new InformantClient(world.informant.api);
      try {
        log("the informant submits text, which opens a training round once accepted");
        const { submission } = await informant.submit(new TextEncoder().encode(HELIOCENTRIC_TEXT), {
          stake: 100n,
        });
        const outcome = await informant.waitForOutcome(submission, { timeoutMs: deadline - Date.now() });
        if (outcome.status !== "accepted") throw new Error(`the submission was ${outcome.status}`);
      } finally {
        await informant.close();
      }
      log("accepted; the trainers train, commit, reveal; the validators judge");
      rows = await until("a round settled with every trainer", settledRound, deadline - Date.now());
    }
    const round = rows[0]!.round;
    const poisoned = rows.at(-1)!;
    const verdicts: ValidatorVerdict[] = [];
    for (const v of world.validators) {
      const res = await fetch(`${v.api}/validator/weights`);
      const report = (await res.json()) as { verdicts: VerdictRecord[] };
      const record = report.verdicts.find((r) => r.round === round);
      const mine = record?.verdicts.find((x) => x.weightsId === poisoned.weightsId);
      if (record && mine) {
        verdicts.push({
          node: v.name,
          address: v.address,
          accept: mine.accept,
          reasons: mine.reasons,
          score: mine.score,
          mode: record.mode,
        });
      }
    }
    const status = await trainers[0]!.trainerStatus();
    return {
      round,
      stake: BigInt(String(status.stake)),
      trainers: rows.map((r, i) => ({
        node: trainerNodes[i]!.name,
        address: trainerNodes[i]!.address,
        behaviour: r.behaviour,
        weightsId: r.weightsId,
        outcome: r.outcome!,
        canonical: r.canonical === true,
      })),
      verdicts,
      canonicalWeightsId: (await node.status()).canonicalWeightsId,
    };
  } finally {
    await Promise.all([node.close(), ...trainers.map((t) => t.close())]);
    if (!options.world) await world.stop();
  }
}

/** The round's trainers, each validator's verdict on the poisoned weights, and the slash. */
export function byzantineReport(r: ByzantineResult): string {
  const lines = [`training round ${r.round}: each trainer escrowed ${r.stake}`, ""];
  for (const t of r.trainers) {
    lines.push(
      `  ${t.node}  ${t.behaviour.padEnd(7)} weights ${t.weightsId.slice(0, 12)}  ${t.outcome}${
        t.canonical ? " (canonical)" : ""
      }${t.outcome === "slashed" ? `: forfeits its stake of ${r.stake}` : ""}`,
    );
  }
  lines.push("", "verdicts on the poisoned weights:");
  for (const v of r.verdicts) {
    const score = v.score === null ? "" : ` score ${v.score.toFixed(2)}`;
    lines.push(
      `  ${v.node}  ${v.accept ? "accept" : "reject"}${score} (${v.mode})${v.reasons.length ? `: ${v.reasons.join(", ")}` : ""}`,
    );
  }
  lines.push("", `canonical weights now: ${r.canonicalWeightsId.slice(0, 12)}`);
  return lines.join("\n");
}

if (import.meta.main) {
  const result = await runByzantine({ log: (line) => process.stderr.write(`· ${line}\n`) });
  process.stdout.write(`\n${byzantineReport(result)}\n`);
}
