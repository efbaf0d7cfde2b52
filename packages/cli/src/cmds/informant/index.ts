import { stat } from "node:fs/promises";
import { DeepshardError } from "@deepshard/protocol";
import type { Command } from "commander";
import { DeepshardClient } from "../../node/client.ts";
import { buildSubmission } from "../../node/roles/informant/blob.ts";
import { InformantClient } from "../../node/roles/informant/client.ts";
import { InformantError } from "../../node/roles/informant/errors.ts";
import type { SubmissionView } from "../../node/roles/informant/service.ts";
import { parseAmount } from "../../node/tx.ts";
import { printResult } from "../../util/output.ts";
import { type ApiOptions, addApiOptions, resolveApiUrl } from "../node/common.ts";

interface SubmitFlags extends ApiOptions {
  stake: string;
  metadata?: string;
  wait?: boolean;
  timeout?: string;
}

/** `deepshard informant submit|status`: data to the network through a node running the informant role. */
export function registerInformant(program: Command): void {
  const informant = program
    .command("informant")
    .description("submit data with a stake through a node that runs the informant role, and follow it");

  addApiOptions(
    informant
      .command("submit")
      .description(
        "submit a file (plain text or JSONL) or a folder (one submission: its files as one JSONL blob, " +
          "a record per paragraph or JSONL line); the node stakes from its own account",
      )
      .argument("<path>", "a file or a folder")
      .requiredOption(
        "--stake <amount>",
        "tokens staked: returned with a reward if accepted, slashed if rejected",
      )
      .option("--metadata <text>", "free text recorded with the submission (at most 1024 bytes)")
      .option("--wait", "wait until the voting window closes and print the outcome and the balance change")
      .option("--timeout <seconds>", "how long --wait waits", "600"),
  ).action(async (path: string, flags: SubmitFlags) => {
    const stake = parseAmount(flags.stake, "--stake");
    const timeoutMs = seconds(flags.timeout ?? "600") * 1000;
    if (flags.metadata !== undefined && Buffer.byteLength(flags.metadata) > 1024) {
      throw new InformantError("BAD_METADATA", "--metadata is limited to 1024 bytes");
    }
    // A wrong path is reported before the node is asked anything.
    await stat(path).catch(() => {
      throw new InformantError("NOT_FOUND", `no such file or folder: ${path}`);
    });
    const url = await resolveApiUrl(flags);
    const client = new InformantClient(url);
    const ledger = new DeepshardClient(url);
    try {
      const status = await client.status();
      if (stake < status.minStake) {
        throw new InformantError(
          "BAD_STAKE",
          `--stake ${stake} is below the chain's minimum of ${status.minStake}`,
        );
      }
      const blob = await buildSubmission(path, status.maxBytes);
      const before = (await ledger.account(status.address)).balance;
      const sent = await client.submit(blob.bytes, {
        stake,
        ...(flags.metadata === undefined ? {} : { metadata: flags.metadata }),
      });
      const what = `${blob.files.length} file${blob.files.length === 1 ? "" : "s"} as one ${blob.format} blob`;
      if (!flags.wait) {
        printResult(flags, { ...sent, format: blob.format, files: blob.files }, () =>
          [
            `submitted ${what}: ${sent.size} bytes, stake ${sent.stake}`,
            `submission ${sent.submission}`,
            `content hash ${sent.contentHash}`,
          ].join("\n"),
        );
        return;
      }
      if (!flags.json) {
        process.stderr.write(`submitted ${what}: ${sent.size} bytes, stake ${sent.stake}\n`);
        process.stderr.write(`submission ${sent.submission}\n`);
      }
      const outcome = await client.waitForOutcome(sent.submission, {
        timeoutMs,
        onUpdate: (v) => {
          if (!flags.json && v.status === "open") {
            process.stderr.write(
              `in the ledger at height ${v.submittedAt}; voting closes at ${v.closesAt}\n`,
            );
          }
        },
      });
      const after = (await ledger.account(status.address)).balance;
      const result = {
        ...outcome,
        format: blob.format,
        files: blob.files,
        balanceBefore: before,
        balanceAfter: after,
      };
      printResult(flags, result, () => describeOutcome(outcome, before, after));
    } finally {
      await client.close();
      await ledger.close();
    }
  });

  addApiOptions(
    informant
      .command("status")
      .description("the node's submissions, its size limit and the chain's minimum stake"),
  ).action(async (flags: ApiOptions) => {
    const client = new InformantClient(await resolveApiUrl(flags));
    try {
      const status = await client.status();
      printResult(flags, status, () =>
        [
          `informant ${status.address}: at most ${status.maxBytes} bytes, minimum stake ${status.minStake}`,
          ...status.submissions.map(
            (s) =>
              `${s.submission}  ${s.status}${s.stake === undefined ? "" : `  stake ${s.stake}`}` +
              (s.net === undefined ? "" : `  net ${signed(s.net)}`),
          ),
        ].join("\n"),
      );
    } finally {
      await client.close();
    }
  });
}

function describeOutcome(o: SubmissionView, before: bigint, after: bigint): string {
  const balance = `balance ${before} -> ${after} (${signed(after - before)}, fees and other activity of the node included)`;
  switch (o.status) {
    case "accepted":
      return [
        `accepted at height ${o.closedAt}: value ${o.value} >= threshold ${o.threshold}`,
        `stake ${o.stake} returned, reward ${o.reward} (net ${signed(o.net ?? 0n)})`,
        balance,
      ].join("\n");
    case "rejected":
      return [
        `rejected at height ${o.closedAt}: value ${o.value} < threshold ${o.threshold}`,
        `stake ${o.stake} slashed (net ${signed(o.net ?? 0n)})`,
        balance,
      ].join("\n");
    case "expired":
      return [
        `expired at height ${o.closedAt}: too few validators voted; stake ${o.stake} returned`,
        balance,
      ].join("\n");
    default:
      return `failed: ${o.log ?? "the transaction did not go through"}`;
  }
}

function signed(n: bigint): string {
  return n > 0n ? `+${n}` : `${n}`;
}

function seconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new DeepshardError("BAD_FLAG", `--timeout must be a positive number of seconds, got "${text}"`);
  }
  return n;
}
