/** The validator role's data part: fetch, score and vote on submitted data. */
export { dataValidatorOptionsFromEnv } from "./env.ts";
export {
  type DataValidatorOptions,
  DataValidatorService,
  type SurpriseModel,
  type SurpriseSource,
  type VoteRecord,
} from "./service.ts";
