import { DeepshardError } from "@deepshard/protocol";
import { weightsOptionsFromEnv } from "../storage/env.ts";
import type { WeightsValidatorOptions } from "./service.ts";

/**
 * The weights validator's settings from the environment: DEEPSHARD_VALIDATOR_REPLICAS, reference
 * replicas trained per round (an integer ≥ 2, default 2; each costs one training run), and
 * DEEPSHARD_WEIGHTS_ANNOUNCE_MS as for the other weights roles.
 */
export function weightsValidatorOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): WeightsValidatorOptions {
  const { announceIntervalMs } = weightsOptionsFromEnv(env);
  const out: WeightsValidatorOptions = announceIntervalMs === undefined ? {} : { announceIntervalMs };
  const replicas = env.DEEPSHARD_VALIDATOR_REPLICAS;
  if (replicas) {
    if (!/^[0-9]{1,2}$/.test(replicas) || Number(replicas) < 2) {
      throw new DeepshardError(
        "CONFIG_INVALID",
        `DEEPSHARD_VALIDATOR_REPLICAS must be an integer from 2 to 99, got ${JSON.stringify(replicas.slice(0, 40))}`,
      );
    }
    out.replicas = Number(replicas);
  }
  return out;
}
