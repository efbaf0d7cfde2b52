import type { Command } from "commander";
import { parseAmount } from "../../node/tx.ts";
import { printResult } from "../../util/output.ts";
import { addSendOptions, describeSent, type SendFlags, sendOptions } from "../ledger/index.ts";
import { addKeyOptions, type KeyOptions, keyAddress, signingKey, withClient } from "../node/common.ts";

/** `deepshard validator bond|unbond|status`. */
export function registerValidator(program: Command): void {
  const validator = program
    .command("validator")
    .description("bond stake as a validator and see how it stands");

  for (const action of ["bond", "unbond"] as const) {
    addSendOptions(
      validator
        .command(action)
        .description(
          action === "bond"
            ? "bond stake from the balance: the validator joins the active set once it holds the minimum bond"
            : "start unbonding stake: it returns to the balance after the chain's unbonding delay",
        )
        .argument("<amount>", "tokens, in the smallest unit"),
    ).action(async (amount: string, options: SendFlags) => {
      const value = parseAmount(amount);
      const opts = sendOptions(options);
      const key = await signingKey(options);
      const result = await withClient(options, (client) =>
        action === "bond" ? client.bond(key, value, opts) : client.unbond(key, value, opts),
      );
      printResult(options, result, () => describeSent(`${action} ${value}`, result));
    });
  }

  addKeyOptions(
    validator
      .command("status")
      .description("a validator's bond, power, jailing and share of the active set")
      .argument("[address]", "a ds1… address (default: the signing key's)"),
  ).action(async (address: string | undefined, options: KeyOptions) => {
    const who = address ?? (await keyAddress(options));
    const { account, set } = await withClient(options, async (client) => ({
      account: await client.account(who),
      set: await client.validators(),
    }));
    const v = account.validator;
    const shareBps = v && set.totalPower > 0n ? Number((v.power * 10_000n) / set.totalPower) : 0;
    const result = {
      address: account.address,
      bonded: account.bonded,
      unbonding: account.unbonding,
      active: v?.active ?? false,
      power: v?.power ?? 0n,
      shareBps,
      jailedUntil: v?.jailedUntil ?? 0,
      tombstoned: v?.tombstoned ?? false,
      missed: v?.missed ?? 0,
      height: set.height,
      validators: set.validators.length,
    };
    printResult(options, result, () =>
      [
        `validator ${result.address}`,
        `bonded ${result.bonded}  unbonding ${result.unbonding}`,
        result.active
          ? `active: power ${result.power} (${(shareBps / 100).toFixed(2)}% of ${set.validators.length} validators)`
          : "not in the active set",
        ...(result.tombstoned ? ["tombstoned (double-signed): can never rejoin"] : []),
        ...(result.jailedUntil > result.height ? [`jailed until height ${result.jailedUntil}`] : []),
      ].join("\n"),
    );
  });
}
