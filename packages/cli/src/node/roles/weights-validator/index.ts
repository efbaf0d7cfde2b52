/** The validator role's weights part: judge trainers' weights and send one verdict per round. */
export { weightsValidatorOptionsFromEnv } from "./env.ts";
export type { TrainerVerdictRecord, VerdictRecord } from "./journal.ts";
export { ValidatorService } from "./role.ts";
export {
  INVALID,
  UNAVAILABLE,
  type WeightsValidatorOptions,
  WeightsValidatorService,
} from "./service.ts";
