/** The informant role: submit data with a stake and follow it to its outcome. */
export { buildSubmission, type SubmissionBlob } from "./blob.ts";
export { InformantClient, type InformantStatus, type SubmitResult, type WaitOptions } from "./client.ts";
export { informantOptionsFromEnv } from "./env.ts";
export { InformantError, type InformantErrorCode } from "./errors.ts";
export {
  DEFAULT_MAX_SUBMISSION_BYTES,
  type InformantOptions,
  InformantService,
  type SubmissionStatus,
  type SubmissionView,
} from "./service.ts";
