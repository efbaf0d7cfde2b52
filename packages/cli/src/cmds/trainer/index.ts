import type { Command } from "commander";
import { WeightsClient } from "../../node/roles/storage/client.ts";
import type { TrainerService } from "../../node/roles/trainer/index.ts";
import { printResult } from "../../util/output.ts";
import { type ApiOptions, addApiOptions, resolveApiUrl } from "../node/common.ts";

type TrainerStatus = ReturnType<TrainerService["status"]>;

/** `deepshard trainer status`. */
export function registerTrainer(program: Command): void {
  const trainer = program.command("trainer").description("how a node running the trainer role is doing");

  addApiOptions(
    trainer
      .command("status")
      .description("the active training round, this trainer's commitment, reveal and job, and past outcomes"),
  ).action(async (options: ApiOptions) => {
    const client = new WeightsClient(await resolveApiUrl(options));
    let status: TrainerStatus;
    try {
      status = (await client.trainerStatus()) as unknown as TrainerStatus;
    } finally {
      await client.close();
    }
    const r = status.activeRound;
    printResult(options, status, () =>
      [
        `trainer ${status.address} (${status.behaviour}) at height ${status.height}: balance ${status.balance}, stake per round ${status.stake}`,
        r
          ? `round ${r.id}: ${r.phase} phase (commit until ${r.commitEnd}, reveal until ${r.revealEnd}, verdicts until ${r.verdictEnd}); ` +
            `${r.batch} blobs, ${r.trainers} trainers; ${r.revealed ? "revealed" : r.committed ? "committed" : "not committed"}` +
            (r.weightsId ? ` ${r.weightsId}` : "")
          : "no training round open",
        ...(status.job
          ? [
              `job: round ${status.job.round} ${status.job.state}` +
                (status.job.steps > 0 ? ` step ${status.job.step}/${status.job.steps}` : "") +
                (status.job.loss !== null ? ` loss ${status.job.loss.toFixed(4)}` : "") +
                (status.job.error ? ` (${status.job.error})` : ""),
            ]
          : []),
        ...status.rounds.map(
          (e) =>
            `  round ${e.round}: ${e.outcome ?? "pending"}${e.canonical ? " (canonical)" : ""} ${e.weightsId}`,
        ),
      ].join("\n"),
    );
  });
}
