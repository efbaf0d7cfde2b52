/**
 * From judgements to the ledger's `training.verdict` transaction. The transaction carries accept and
 * at most MAX_REASONS reason codes per trainer; the numbers behind each reason stay in the
 * validator's own report (logs, `--json` output), since the ledger only counts accept/reject by stake.
 */
import {
  compareBytes,
  MAX_REASONS,
  MAX_VERDICTS,
  type TrainerVerdict,
  trainerVerdictSchema,
} from "@deepshard/protocol";
import { ValidatorError } from "./errors.ts";
import type { Verdict } from "./judge.ts";

/** One trainer's entry: accept, and the worst reasons first. */
export function toTrainerVerdict(trainer: Uint8Array, verdict: Verdict): TrainerVerdict {
  return trainerVerdictSchema.parse(
    { trainer, accept: verdict.accept, reasons: verdict.reasons.slice(0, MAX_REASONS).map((r) => r.code) },
    "verdict",
  );
}

/** The `verdicts` field of a `training.verdict` transaction: sorted by trainer key, at most MAX_VERDICTS. */
export function trainingVerdicts(
  entries: readonly { trainer: Uint8Array; verdict: Verdict }[],
): TrainerVerdict[] {
  if (entries.length > MAX_VERDICTS) {
    throw new ValidatorError("INPUT_INVALID", `at most ${MAX_VERDICTS} verdicts fit one transaction`, {
      meta: { verdicts: entries.length },
    });
  }
  const out = entries
    .map((e) => toTrainerVerdict(e.trainer, e.verdict))
    .sort((a, b) => compareBytes(a.trainer, b.trainer));
  for (let i = 1; i < out.length; i++) {
    if (compareBytes(out[i - 1]!.trainer, out[i]!.trainer) === 0) {
      throw new ValidatorError("INPUT_INVALID", "one verdict per trainer");
    }
  }
  return out;
}
