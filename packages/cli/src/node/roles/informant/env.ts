import { DeepshardError } from "@deepshard/protocol";
import type { InformantOptions } from "./service.ts";

/** The informant's settings from the environment: DEEPSHARD_INFORMANT_MAX_BYTES, the largest blob taken. */
export function informantOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): InformantOptions {
  const text = env.DEEPSHARD_INFORMANT_MAX_BYTES;
  if (!text) return {};
  if (!/^[0-9]{1,15}$/.test(text) || Number(text) < 1) {
    throw new DeepshardError(
      "CONFIG_INVALID",
      `DEEPSHARD_INFORMANT_MAX_BYTES must be a positive number of bytes, got ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
  return { maxBytes: Number(text) };
}
