/**
 * The role services `deepshard node start` runs, by role name. Each role's implementation adds
 * its one line here (`informant: (config) => new InformantService(config)`); a role listed in the
 * config without an entry runs only what the ledger node does for it (consensus, for validators).
 */
import type { Role } from "./config.ts";
import { DataValidatorService, dataValidatorOptionsFromEnv } from "./roles/data-validator/index.ts";
import { InferenceService } from "./roles/inference/index.ts";
import { InformantService, informantOptionsFromEnv } from "./roles/informant/index.ts";
import { weightsOptionsFromEnv } from "./roles/storage/env.ts";
import { StorageService } from "./roles/storage/index.ts";
import { TrainerService } from "./roles/trainer/index.ts";
import {
  ValidatorService,
  WeightsValidatorService,
  weightsValidatorOptionsFromEnv,
} from "./roles/weights-validator/index.ts";
import type { RoleFactory } from "./service.ts";

export const roleFactories: Partial<Record<Role, RoleFactory>> = {
  informant: () => new InformantService(informantOptionsFromEnv()),
  validator: (config) =>
    new ValidatorService(
      new DataValidatorService(dataValidatorOptionsFromEnv()),
      new WeightsValidatorService(config, weightsValidatorOptionsFromEnv()),
    ),
  trainer: (config) => new TrainerService(config, weightsOptionsFromEnv()),
  storage: (config) => new StorageService(config, weightsOptionsFromEnv()),
  inference: (config) => new InferenceService(config, weightsOptionsFromEnv()),
};
