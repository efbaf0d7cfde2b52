export { buildProgram, main } from "./main.ts";
export {
  type AccountInfo,
  type BlockInfo,
  ClientError,
  DeepshardClient,
  type NodeStatus,
  type SendOptions,
  type SendResult,
  type SupplyInfo,
  type TxInfo,
  type ValidatorSetInfo,
} from "./node/client.ts";
export { type NodeConfig, ROLES, type Role } from "./node/config.ts";
export { Daemon, type DaemonOptions } from "./node/daemon.ts";
export { networkPaths, resolveDataDir } from "./node/datadir.ts";
export {
  DEVNET_PARAMS,
  DEVNET_PASSPHRASE,
  Devnet,
  type DevnetEvent,
  type DevnetManifest,
  type DevnetNode,
  prepareDevnet,
} from "./node/devnet.ts";
export type { NodeEvent } from "./node/events.ts";
export {
  type DataValidatorOptions,
  DataValidatorService,
  type SurpriseModel,
  type SurpriseSource,
} from "./node/roles/data-validator/index.ts";
export {
  buildSubmission,
  InformantClient,
  InformantError,
  InformantService,
  type SubmissionView,
} from "./node/roles/informant/index.ts";
export { WeightsClient } from "./node/roles/storage/client.ts";
export { importModel } from "./node/roles/storage/models.ts";
export * from "./node/serve/index.ts";
export type { NodeLedger, RoleContext, RoleFactory, RoleService } from "./node/service.ts";
export { signTx, type TxBody } from "./node/tx.ts";
export { chunkModel, WEIGHTS_CHUNK_SIZE } from "./node/weights-id.ts";
