/**
 * A node's configuration: defaults, then the network's config.json, then `DEEPSHARD_*`
 * environment variables, then command-line flags (flags win). Every value is validated where it
 * enters, and an error names the field, what it must be, what it got and where it came from.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { DeepshardError } from "@deepshard/protocol";

export const ROLES = ["validator", "informant", "trainer", "storage", "inference"] as const;
export type Role = (typeof ROLES)[number];

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** CometBFT's RPC port plus 23: out of the way of common services. */
export const DEFAULT_API_PORT = 26680;
export const DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/26656";

export interface NodeConfig {
  /** The network this node belongs to; the data directory's subdirectory has the same name. */
  chainId: string;
  roles: Role[];
  /** libp2p listen multiaddrs. */
  listen: string[];
  /** Peers to dial on start, each `/…/p2p/<peer id>`. */
  bootstrap: string[];
  /** The pause after each block: at most one block per interval (the ledger node's default is 1000). */
  blockIntervalMs: number;
  /** Port of the HTTP API on 127.0.0.1; 0 picks a free one (the daemon prints it). */
  apiPort: number;
  logLevel: LogLevel;
  /** How long a stopping daemon waits for its parts before it exits anyway. */
  stopTimeoutMs: number;
}

export type ConfigErrorCode = "CONFIG_INVALID" | "CONFIG_UNREADABLE";

export class ConfigError extends DeepshardError<ConfigErrorCode> {
  override name = "ConfigError";
}

export function defaultConfig(chainId: string): NodeConfig {
  return {
    chainId,
    roles: ["validator"],
    listen: [DEFAULT_LISTEN],
    bootstrap: [],
    blockIntervalMs: 1000,
    apiPort: DEFAULT_API_PORT,
    logLevel: "info",
    stopTimeoutMs: 10_000,
  };
}

/** Thrown by a field parser; the caller adds the field name and the source. */
class Bad {
  readonly expected: string;
  constructor(expected: string) {
    this.expected = expected;
  }
}

type Parser<T> = (value: unknown) => T;

/** Environment variables and flags arrive as strings: lists are comma-separated there. */
function list<T>(item: Parser<T>, what: string): Parser<T[]> {
  return (value) => {
    const items =
      typeof value === "string"
        ? value
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s.length > 0)
        : value;
    if (!Array.isArray(items)) throw new Bad(`a list of ${what}`);
    return items.map((v) => {
      try {
        return item(v);
      } catch (err) {
        if (err instanceof Bad) throw new Bad(`a list of ${what}`);
        throw err;
      }
    });
  };
}

function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (value) => {
    if (typeof value !== "string" || !values.includes(value as T))
      throw new Bad(`one of ${values.join(", ")}`);
    return value as T;
  };
}

function integer(min: number, max: number): Parser<number> {
  return (value) => {
    const n = typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : value;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new Bad(`an integer in [${min}, ${max}]`);
    }
    return n;
  };
}

const multiaddr: Parser<string> = (value) => {
  if (typeof value !== "string" || !/^\/[a-z0-9]+\/\S+$/.test(value) || value.length > 512) {
    throw new Bad("a multiaddr such as /ip4/127.0.0.1/tcp/26656");
  }
  return value;
};

const peerMultiaddr: Parser<string> = (value) => {
  const addr = multiaddr(value);
  if (!/\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(addr)) throw new Bad("a multiaddr ending in /p2p/<peer id>");
  return addr;
};

const chainIdParser: Parser<string> = (value) => {
  if (typeof value !== "string" || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(value)) {
    throw new Bad("1–64 of a-z 0-9 . _ - (starting with a letter or digit)");
  }
  return value;
};

const rolesParser: Parser<Role[]> = (value) => {
  const roles = list(oneOf(ROLES), `roles (${ROLES.join(", ")})`)(value);
  return ROLES.filter((r) => roles.includes(r));
};

interface FieldSpec {
  parse: Parser<unknown>;
  /** The environment variable that sets it; absent for fields only a file sets. */
  env?: string;
}

const FIELDS: Record<keyof NodeConfig, FieldSpec> = {
  chainId: { parse: chainIdParser },
  roles: { parse: rolesParser, env: "DEEPSHARD_ROLES" },
  listen: { parse: list(multiaddr, "multiaddrs"), env: "DEEPSHARD_LISTEN" },
  bootstrap: {
    parse: list(peerMultiaddr, "multiaddrs ending in /p2p/<peer id>"),
    env: "DEEPSHARD_BOOTSTRAP",
  },
  blockIntervalMs: { parse: integer(10, 600_000), env: "DEEPSHARD_BLOCK_INTERVAL_MS" },
  apiPort: { parse: integer(0, 65535), env: "DEEPSHARD_API_PORT" },
  logLevel: { parse: oneOf(LOG_LEVELS), env: "DEEPSHARD_LOG_LEVEL" },
  stopTimeoutMs: { parse: integer(100, 600_000), env: "DEEPSHARD_STOP_TIMEOUT_MS" },
};

/** Values from one place, named for error messages ("config file …", "flag", "environment"). */
export interface ConfigLayer {
  source: string;
  values: Record<string, unknown>;
}

function show(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** Applies the layers in order over the defaults; later layers win field by field. */
export function mergeConfig(defaults: NodeConfig, layers: readonly ConfigLayer[]): NodeConfig {
  const config: Record<string, unknown> = { ...defaults };
  for (const layer of layers) {
    for (const [field, raw] of Object.entries(layer.values)) {
      if (raw === undefined) continue;
      const spec = (FIELDS as Record<string, FieldSpec | undefined>)[field];
      if (!spec) {
        throw new ConfigError("CONFIG_INVALID", `unknown config field "${field}"`, {
          details: `in ${layer.source}; known fields: ${Object.keys(FIELDS).join(", ")}`,
          meta: { field, source: layer.source },
        });
      }
      const from =
        layer.source === "flags"
          ? `flag --${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
          : spec.env && layer.source === "environment"
            ? `${layer.source} (${spec.env})`
            : layer.source;
      try {
        config[field] = spec.parse(raw);
      } catch (err) {
        if (!(err instanceof Bad)) throw err;
        throw new ConfigError("CONFIG_INVALID", `config: ${field} must be ${err.expected}`, {
          details: `got ${show(raw)} from ${from}`,
          meta: { field, source: from },
        });
      }
    }
  }
  return config as unknown as NodeConfig;
}

/** The `DEEPSHARD_*` variables that set config fields. */
export function envLayer(env: NodeJS.ProcessEnv = process.env): ConfigLayer {
  const values: Record<string, unknown> = {};
  for (const [field, spec] of Object.entries(FIELDS)) {
    if (spec.env && env[spec.env] !== undefined && env[spec.env] !== "") values[field] = env[spec.env];
  }
  return { source: "environment", values };
}

/** Reads a config.json; a missing file is an empty layer when `optional`. */
export async function readConfigFile(path: string, optional = false): Promise<ConfigLayer> {
  const source = `config file ${path}`;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    if (optional && (cause as NodeJS.ErrnoException).code === "ENOENT") return { source, values: {} };
    throw new ConfigError("CONFIG_UNREADABLE", `cannot read the config file ${path}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError("CONFIG_INVALID", `the config file ${path} is not valid JSON`, {
      details: cause instanceof Error ? cause.message : String(cause),
    });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError("CONFIG_INVALID", `the config file ${path} must hold a JSON object`);
  }
  return { source, values: json as Record<string, unknown> };
}

/** Writes atomically (temporary file, then rename). */
export async function writeConfigFile(path: string, config: NodeConfig): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`);
  await rename(tmp, path);
}

export interface LoadConfigOptions {
  chainId: string;
  /** The network's config.json (or the file given with --config). */
  file: string;
  /** Flag values; undefined entries are ignored. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}

/** defaults < config file < environment < flags; the file's chain id must be the network's. */
export async function loadConfig(options: LoadConfigOptions): Promise<NodeConfig> {
  const file = await readConfigFile(options.file, true);
  const config = mergeConfig(defaultConfig(options.chainId), [
    file,
    envLayer(options.env),
    { source: "flags", values: options.flags ?? {} },
  ]);
  if (config.chainId !== options.chainId) {
    throw new ConfigError("CONFIG_INVALID", `config: chainId is "${config.chainId}" in ${file.source}`, {
      details: `this is the directory of network "${options.chainId}"`,
      meta: { field: "chainId" },
    });
  }
  return config;
}

/** The node's API URL as a client reaches it. */
export function apiUrlFor(config: Pick<NodeConfig, "apiPort">): string {
  return `http://127.0.0.1:${config.apiPort}`;
}
