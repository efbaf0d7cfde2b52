/** The little the host needs from a logger; pass any structured logger that has these four methods. */
export interface HostLogger {
  debug(message: string, context?: Record<string, unknown>): void;
  info(message: string, context?: Record<string, unknown>): void;
  warn(message: string, context?: Record<string, unknown>): void;
  error(message: string, context?: Record<string, unknown>): void;
}

const ignore = (): void => {};

export const silentLogger: HostLogger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
