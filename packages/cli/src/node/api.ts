/**
 * The node's HTTP API: JSON over node:http, bound to 127.0.0.1 only, for the CLI and scripts.
 * It has no token because only processes on this machine reach it; a Host-header check stops web
 * pages from reaching it through DNS rebinding. Every response, errors included, is JSON
 * (`{"error":{"code","message","details"}}`) except /metrics (Prometheus text) and /events
 * (server-sent events). Bodies are read within a limit per route; a handler's failure answers
 * that request and nothing else: the daemon keeps running.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { DeepshardError, type DeepshardErrorOptions } from "@deepshard/protocol";
import { jsonReplacer } from "../util/output.ts";
import type { Logger } from "./logger.ts";
import type { NodeMetrics } from "./metrics.ts";

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

export const DEFAULT_MAX_BODY_BYTES = 256 * 1024;

export class ApiError extends DeepshardError {
  override name = "ApiError";
  readonly status: number;

  constructor(status: number, code: string, message: string, options: DeepshardErrorOptions = {}) {
    super(code, message, options);
    this.status = status;
  }
}

export interface ApiRequest {
  method: string;
  path: string;
  /** The `:name` segments of the route pattern, URI-decoded. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The body, read up to the route's limit (413 beyond it). */
  bytes(): Promise<Buffer>;
  /** The body parsed as JSON (400 when it is not). */
  json(): Promise<unknown>;
  /** For streaming handlers: write here and return STREAMED. */
  raw: IncomingMessage;
  res: ServerResponse;
  /** Aborted when the client goes away or the server stops. */
  signal: AbortSignal;
}

/** Returned by a handler that wrote its own response (streams, non-JSON bodies). */
export const STREAMED = Symbol("streamed");

/** A JSON answer with a status other than 200. */
export class Reply {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    this.status = status;
    this.body = body;
  }
}

export type ApiHandler = (req: ApiRequest) => unknown;

export interface RouteOptions {
  maxBodyBytes?: number;
}

/** How role services add their own routes (e.g. `GET /informant/submissions`). */
export interface ApiRoutes {
  route(method: HttpMethod, pattern: string, handler: ApiHandler, options?: RouteOptions): void;
}

interface Route {
  method: HttpMethod;
  segments: string[];
  handler: ApiHandler;
  maxBodyBytes: number;
}

export interface ApiServerOptions {
  /** 0 picks a free port. */
  port: number;
  logger: Logger;
  metrics?: NodeMetrics | undefined;
  maxBodyBytes?: number;
}

export class ApiServer implements ApiRoutes {
  readonly #routes: Route[] = [];
  readonly #server: Server;
  readonly #options: ApiServerOptions;
  readonly #stopping = new AbortController();
  #port = 0;
  #closed: Promise<void> | undefined;

  constructor(options: ApiServerOptions) {
    this.#options = options;
    this.#server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        options.logger.error("api response failed", { error: err instanceof Error ? err.message : `${err}` });
        res.destroy();
      });
    });
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 30_000;
    this.#server.keepAliveTimeout = 5_000;
    this.#server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
      const body = JSON.stringify({
        error: { code: "BAD_HTTP", message: "malformed HTTP request", details: err.code ?? err.message },
      });
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
  }

  route(method: HttpMethod, pattern: string, handler: ApiHandler, options: RouteOptions = {}): void {
    const segments = split(pattern);
    const clash = this.#routes.find(
      (r) => r.method === method && r.segments.join("/") === segments.join("/"),
    );
    if (clash) throw new DeepshardError("ROUTE_EXISTS", `the API already has ${method} ${pattern}`);
    this.#routes.push({
      method,
      segments,
      handler,
      maxBodyBytes: options.maxBodyBytes ?? this.#options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    });
  }

  /** Listens on 127.0.0.1; a port in use is a clear error. */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          err.code === "EADDRINUSE"
            ? new DeepshardError("API_PORT_IN_USE", `the API port ${this.#options.port} is in use`, {
                details: "another node or program listens there; pass --api-port or set DEEPSHARD_API_PORT",
              })
            : new DeepshardError("API_START_FAILED", "the HTTP API could not start", { cause: err }),
        );
      };
      this.#server.once("error", onError);
      this.#server.listen(this.#options.port, "127.0.0.1", () => {
        this.#server.off("error", onError);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Stops accepting, ends open streams and connections. Safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#stopping.abort();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    res.on("finish", () => this.#options.metrics?.apiRequests.inc({ method, status: res.statusCode }));
    try {
      this.#checkHost(req);
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://127.0.0.1");
      } catch {
        throw new ApiError(400, "BAD_URL", "the request URL does not parse");
      }
      const path = url.pathname;
      const segments = split(path);
      const matches = this.#routes
        .map((route) => ({ route, params: match(route.segments, segments) }))
        .filter((m): m is { route: Route; params: Record<string, string> } => m.params !== undefined);
      if (matches.length === 0) throw new ApiError(404, "NOT_FOUND", `no such endpoint: ${path}`);
      const found = matches.find((m) => m.route.method === method);
      if (!found) {
        res.setHeader("allow", [...new Set(matches.map((m) => m.route.method))].join(", "));
        throw new ApiError(405, "METHOD_NOT_ALLOWED", `${method} is not allowed on ${path}`);
      }
      const closed = new AbortController();
      res.on("close", () => closed.abort());
      let body: Promise<Buffer> | undefined;
      const bytes = () => {
        body ??= readBody(req, found.route.maxBodyBytes);
        return body;
      };
      const request: ApiRequest = {
        method,
        path,
        params: found.params,
        query: url.searchParams,
        bytes,
        json: async () => {
          const raw = await bytes();
          try {
            return JSON.parse(raw.toString("utf8"));
          } catch {
            throw new ApiError(400, "BAD_JSON", "the request body is not valid JSON");
          }
        },
        raw: req,
        res,
        signal: AbortSignal.any([closed.signal, this.#stopping.signal]),
      };
      const result = await found.route.handler(request);
      if (result === STREAMED) return;
      if (result instanceof Reply) sendJson(res, result.status, result.body);
      else sendJson(res, 200, result ?? {});
    } catch (err) {
      this.#sendError(req, res, err);
    }
  }

  #checkHost(req: IncomingMessage): void {
    const host = req.headers.host;
    if (host === undefined) return;
    const name = host.replace(/:\d+$/, "").toLowerCase();
    if (name !== "127.0.0.1" && name !== "localhost" && name !== "[::1]") {
      throw new ApiError(403, "FORBIDDEN_HOST", "the node API answers only requests addressed to 127.0.0.1");
    }
  }

  #sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let status = 500;
    let body: { code: string; message: string; details?: string; meta?: Record<string, unknown> };
    if (err instanceof ApiError) {
      status = err.status;
      body = errorBody(err);
    } else if (err instanceof DeepshardError) {
      body = errorBody(err);
      this.#options.logger.warn("api request failed", {
        path: req.url,
        code: err.code,
        error: err.shortMessage,
      });
    } else {
      body = { code: "INTERNAL", message: "internal error" };
      this.#options.logger.error("api handler threw", {
        path: req.url,
        error: err instanceof Error ? (err.stack ?? err.message) : `${err}`,
      });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // A body we did not read may still be arriving: close the connection after answering.
    if (!req.complete) res.setHeader("connection", "close");
    sendJson(res, status, { error: body });
    if (!req.complete) res.on("finish", () => req.destroy());
  }
}

function errorBody(err: DeepshardError): { code: string; message: string; details?: string } {
  return { code: err.code, message: err.shortMessage, ...(err.details ? { details: err.details } : {}) };
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value, jsonReplacer)}\n`;
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

function split(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

function match(pattern: readonly string[], path: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== path.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = path[i]!;
    if (p.startsWith(":")) {
      try {
        params[p.slice(1)] = decodeURIComponent(s);
      } catch {
        throw new ApiError(400, "BAD_URL", `path segment ${i + 1} is not valid URI encoding`);
      }
    } else if (p !== s) return undefined;
  }
  return params;
}

/**
 * Reads a body of at most `limit` bytes; a declared or actual larger one is a 413. Reading stops
 * at the limit without destroying the request, so the error can still be sent before closing.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return readLimitedBody(
    req,
    limit,
    () => new ApiError(413, "BODY_TOO_LARGE", `the request body exceeds ${limit} bytes`, { meta: { limit } }),
    (cause) => new ApiError(400, "BAD_BODY", "the request body broke off", { cause }),
  );
}

/** The reading behind `readBody`, with the caller's errors (the OpenAI server has its own shape). */
export function readLimitedBody(
  req: IncomingMessage,
  limit: number,
  tooLarge: () => Error,
  broken: (cause: unknown) => Error,
): Promise<Buffer> {
  if (Number(req.headers["content-length"] ?? 0) > limit) return Promise.reject(tooLarge());
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", (cause) => reject(broken(cause)));
  });
}
