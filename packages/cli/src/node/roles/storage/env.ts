import { DeepshardError } from "@deepshard/protocol";
import type { DirectoryOptions } from "./directory.ts";

/**
 * Settings of the weights roles (trainer, storage, inference) from the environment:
 * DEEPSHARD_WEIGHTS_ANNOUNCE_MS, how often a node announces the chunks it holds (default 5000; a
 * holder silent for 4 intervals has left), and DEEPSHARD_TRAINER_BEHAVIOUR (a test/demo knob:
 * "base" makes a dishonest trainer that submits the base weights unchanged, "poison" one that trains
 * on text the network never accepted; default "honest").
 */
export function weightsOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): DirectoryOptions & { behaviour?: "honest" | "base" | "poison" } {
  const out: DirectoryOptions & { behaviour?: "honest" | "base" | "poison" } = {};
  const ms = env.DEEPSHARD_WEIGHTS_ANNOUNCE_MS;
  if (ms) {
    if (!/^[0-9]{1,9}$/.test(ms) || Number(ms) < 50) {
      throw new DeepshardError(
        "CONFIG_INVALID",
        `DEEPSHARD_WEIGHTS_ANNOUNCE_MS must be a number of milliseconds ≥ 50, got ${JSON.stringify(ms.slice(0, 40))}`,
      );
    }
    out.announceIntervalMs = Number(ms);
  }
  const behaviour = env.DEEPSHARD_TRAINER_BEHAVIOUR;
  if (behaviour) {
    if (behaviour !== "honest" && behaviour !== "base" && behaviour !== "poison") {
      throw new DeepshardError(
        "CONFIG_INVALID",
        `DEEPSHARD_TRAINER_BEHAVIOUR must be honest, base or poison, got ${JSON.stringify(behaviour.slice(0, 40))}`,
      );
    }
    out.behaviour = behaviour;
  }
  return out;
}
