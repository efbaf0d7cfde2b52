import { DeepshardError, type DeepshardErrorOptions } from "@deepshard/protocol";

/**
 * An error answered in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so
 * OpenAI clients raise their usual exceptions (BadRequestError, NotFoundError, RateLimitError).
 */
export class OpenAIError extends DeepshardError {
  override name = "OpenAIError";
  readonly status: number;
  readonly type: string;
  readonly param: string | null;

  constructor(
    status: number,
    code: string,
    message: string,
    options: DeepshardErrorOptions & { param?: string | null; type?: string } = {},
  ) {
    super(code, message, options);
    this.status = status;
    this.param = options.param ?? null;
    this.type =
      options.type ??
      (status === 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error");
  }

  body(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.shortMessage, type: this.type, param: this.param, code: this.code } };
  }
}

/** A 400 for one request field. */
export function badParam(param: string, message: string, code = "invalid_value"): OpenAIError {
  return new OpenAIError(400, code, message, { param });
}
