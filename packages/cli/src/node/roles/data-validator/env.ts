import { DeepshardError } from "@deepshard/protocol";
import { ExternalJudge } from "@deepshard/validator";
import type { DataValidatorOptions } from "./service.ts";

/**
 * The data validator's settings from the environment: an external judge (any OpenAI-compatible
 * chat completions API) when DEEPSHARD_JUDGE_URL is set, with DEEPSHARD_JUDGE_MODEL and, if it needs
 * one, DEEPSHARD_JUDGE_API_KEY (kept out of config files on purpose).
 */
export function dataValidatorOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DataValidatorOptions {
  const url = env.DEEPSHARD_JUDGE_URL;
  if (!url) return {};
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DeepshardError("CONFIG_INVALID", `DEEPSHARD_JUDGE_URL is not a URL: ${url.slice(0, 80)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new DeepshardError(
      "CONFIG_INVALID",
      "DEEPSHARD_JUDGE_URL must be an http(s) URL, e.g. http://127.0.0.1:8080/v1",
    );
  }
  const model = env.DEEPSHARD_JUDGE_MODEL;
  if (!model) {
    throw new DeepshardError(
      "CONFIG_INVALID",
      "DEEPSHARD_JUDGE_MODEL must name the judge's model when DEEPSHARD_JUDGE_URL is set",
    );
  }
  return {
    judge: new ExternalJudge({ baseUrl: url, model, apiKey: env.DEEPSHARD_JUDGE_API_KEY || undefined }),
  };
}
