export * from "./errors.ts";
export { type ConnectionPolicy, PeerGater } from "./gater.ts";
export * from "./gossip.ts";
export * from "./host.ts";
export type { HostLogger } from "./logger.ts";
export { silentLogger } from "./logger.ts";
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_TIMEOUT_MS,
  type HandleOptions,
  type RequestContext,
  type RequestHandler,
  type RequestOptions,
  type RequestTarget,
} from "./reqresp.ts";
