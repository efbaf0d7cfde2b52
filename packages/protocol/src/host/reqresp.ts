/**
 * Request/response over one libp2p stream per exchange.
 *
 * Wire format (all lengths are unsigned varints):
 *   request  = length ‖ bytes                      then the requester closes its writing side
 *   response = 0x00 ‖ length ‖ bytes               success
 *            | 0x01 ‖ length ‖ JSON {code,message}  the handler failed or refused the request
 * A receiver checks a declared length against its limit before reading a single body byte, and
 * allocates the body only once it has passed.
 */
import type { Connection, Libp2p, PeerId, Stream, StreamCloseEvent } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { DeepshardError } from "../errors.ts";
import { abortError, HostError } from "./errors.ts";
import { encodeVarint, StreamReader, sendFrame } from "./frames.ts";
import type { HostLogger } from "./logger.ts";

const STATUS_OK = 0;
const STATUS_ERROR = 1;
/** Error frames carry a code and a short line, never a payload. */
const MAX_ERROR_BYTES = 4096;

export const DEFAULT_MAX_MESSAGE_BYTES = 4 << 20;
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Where a request goes: a peer id (dialled through the peer store), a multiaddr, or either as a string. */
export type RequestTarget = PeerId | Multiaddr | string;

export interface HandleOptions {
  /** Requests declaring more bytes are refused with TOO_LARGE before their body is read. */
  maxRequestBytes?: number;
  /** A response above this is replaced by a TOO_LARGE error frame (guards against our own bugs). */
  maxResponseBytes?: number;
  /** Deadline for reading the request, running the handler and sending the response. */
  timeoutMs?: number;
  /** Concurrent inbound streams per connection for this protocol (libp2p's default is 32). */
  maxInboundStreams?: number;
}

export interface RequestContext {
  /** The remote peer, as authenticated by the connection's handshake (TLS or noise). */
  from: PeerId;
  protocol: string;
  /** Aborts when the deadline passes or the host stops. */
  signal: AbortSignal;
}

/**
 * Answers one request. Throw a DeepshardError to send its `code` and short message back (the requester
 * gets REMOTE_ERROR); any other error is reported as `INTERNAL` without its message.
 */
export type RequestHandler = (
  request: Uint8Array,
  context: RequestContext,
) => Uint8Array | Promise<Uint8Array>;

export interface RequestOptions {
  /** A response declaring more bytes is refused with TOO_LARGE before its body is read. */
  maxResponseBytes?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export function parseTarget(target: RequestTarget): PeerId | Multiaddr {
  if (typeof target !== "string") return target;
  try {
    return target.startsWith("/") ? multiaddr(target) : peerIdFromString(target);
  } catch (err) {
    throw new HostError("DIAL_FAILED", "not a peer id or multiaddr", { details: target, cause: err });
  }
}

export function checkLimit(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
  return value;
}

/** Registers `handler` for `protocol` on `node`; returns nothing, `node.unhandle(protocol)` removes it. */
export async function handleProtocol(
  node: Libp2p,
  protocol: string,
  handler: RequestHandler,
  options: HandleOptions,
  stopping: AbortSignal,
  log: HostLogger,
): Promise<void> {
  const limits = {
    maxRequestBytes: checkLimit("maxRequestBytes", options.maxRequestBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
    maxResponseBytes: checkLimit("maxResponseBytes", options.maxResponseBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
    timeoutMs: checkLimit("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
  };
  await node.handle(
    protocol,
    (stream, connection) => serve(stream, connection, handler, limits, stopping, log),
    options.maxInboundStreams === undefined ? {} : { maxInboundStreams: options.maxInboundStreams },
  );
}

async function serve(
  stream: Stream,
  connection: Connection,
  handler: RequestHandler,
  limits: { maxRequestBytes: number; maxResponseBytes: number; timeoutMs: number },
  stopping: AbortSignal,
  log: HostLogger,
): Promise<void> {
  // The handler's signal also fires when the requester resets the stream (it gave up or timed out).
  const gone = new AbortController();
  const onClose = (evt: StreamCloseEvent) => {
    if (evt.error)
      gone.abort(new HostError("STREAM_FAILED", "the requester went away", { cause: evt.error }));
  };
  stream.addEventListener("close", onClose);
  const signal = AbortSignal.any([stopping, AbortSignal.timeout(limits.timeoutMs), gone.signal]);
  const from = connection.remotePeer;
  const reader = new StreamReader(stream);
  try {
    const declared = await reader.readVarint(signal);
    if (declared > limits.maxRequestBytes) {
      log.debug("request refused: too large", { protocol: stream.protocol, from: from.toString(), declared });
      await sendError(
        stream,
        "TOO_LARGE",
        `request of ${declared} bytes is above ${limits.maxRequestBytes}`,
        signal,
      );
      // Flush the error, then reset rather than read a body the requester may still be sending.
      await stream.close({ signal });
      stream.abort(new HostError("TOO_LARGE", "request too large"));
      return;
    }
    const request = await reader.readExactly(declared, signal);
    let response: Uint8Array;
    try {
      response = await handler(request, { from, protocol: stream.protocol, signal });
    } catch (err) {
      const known = err instanceof DeepshardError;
      if (!known) log.warn("request handler failed", { protocol: stream.protocol, error: String(err) });
      const code = known ? err.code : "INTERNAL";
      const message = known ? err.shortMessage : "the handler failed";
      await sendError(stream, code, message, signal);
      await stream.close({ signal });
      return;
    }
    if (response.byteLength > limits.maxResponseBytes) {
      log.warn("response above the handler's own limit", {
        protocol: stream.protocol,
        bytes: response.byteLength,
      });
      const what = `response of ${response.byteLength} bytes is above ${limits.maxResponseBytes}`;
      await sendError(stream, "TOO_LARGE", what, signal);
      await stream.close({ signal });
      return;
    }
    await sendFrame(stream, header(STATUS_OK, response.byteLength), response, signal);
    await stream.close({ signal });
  } catch (err) {
    log.debug("inbound request failed", {
      protocol: stream.protocol,
      from: from.toString(),
      error: String(err),
    });
    stream.abort(err instanceof Error ? err : new Error(String(err)));
  } finally {
    stream.removeEventListener("close", onClose);
    reader.detach();
  }
}

async function sendError(stream: Stream, code: string, message: string, signal: AbortSignal): Promise<void> {
  let body = new TextEncoder().encode(JSON.stringify({ code, message }));
  if (body.byteLength > MAX_ERROR_BYTES) {
    body = new TextEncoder().encode(JSON.stringify({ code: code.slice(0, 64), message: "" }));
  }
  await sendFrame(stream, header(STATUS_ERROR, body.byteLength), body, signal);
}

function header(status: number, length: number): Uint8Array {
  const len = encodeVarint(length);
  const out = new Uint8Array(1 + len.byteLength);
  out[0] = status;
  out.set(len, 1);
  return out;
}

/** Sends one request and returns the response body; every failure is a HostError. */
export async function sendRequest(
  node: Libp2p,
  target: RequestTarget,
  protocol: string,
  body: Uint8Array,
  options: RequestOptions,
  stopping: AbortSignal,
): Promise<Uint8Array> {
  const maxResponseBytes = checkLimit(
    "maxResponseBytes",
    options.maxResponseBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
  );
  const timeoutMs = checkLimit("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signals = [stopping, AbortSignal.timeout(timeoutMs)];
  if (options.signal) signals.push(options.signal);
  const signal = AbortSignal.any(signals);
  const peer = parseTarget(target);

  let stream: Stream;
  try {
    stream = await node.dialProtocol(peer, protocol, { signal });
  } catch (err) {
    if (signal.aborted) throw abortError(signal, `opening ${protocol}`);
    if (err instanceof Error && err.name === "UnsupportedProtocolError") {
      throw new HostError("PROTOCOL_UNSUPPORTED", `the remote does not support ${protocol}`, {
        cause: err,
        meta: { protocol, target: peer.toString() },
      });
    }
    throw new HostError("DIAL_FAILED", `could not open ${protocol}`, {
      details: peer.toString(),
      cause: err,
      meta: { protocol, target: peer.toString() },
    });
  }

  const reader = new StreamReader(stream);
  // Write and read at once: a handler may refuse before the whole request is sent.
  const writing = sendFrame(stream, encodeVarint(body.byteLength), body, signal)
    .then(() => stream.close({ signal }))
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  try {
    const status = await reader.readByte(signal);
    const declared = await reader.readVarint(signal);
    if (status === STATUS_OK) {
      if (declared > maxResponseBytes) {
        throw new HostError(
          "TOO_LARGE",
          `response of ${declared} bytes is above the limit of ${maxResponseBytes}`,
          {
            meta: { side: "local", protocol, declared, limit: maxResponseBytes },
          },
        );
      }
      const response = await reader.readExactly(declared, signal);
      await writing;
      return response;
    }
    if (status === STATUS_ERROR && declared <= MAX_ERROR_BYTES) {
      throw remoteError(await reader.readExactly(declared, signal), protocol);
    }
    throw new HostError("STREAM_FAILED", "malformed response", { meta: { protocol, status, declared } });
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)));
    if (err instanceof HostError && err.code !== "STREAM_FAILED") throw err;
    if (signal.aborted) throw abortError(signal, `request on ${protocol}`);
    // A stream that broke while we were still sending usually explains itself through the write error.
    const writeError = await writing;
    throw err instanceof HostError
      ? err
      : new HostError("STREAM_FAILED", `request on ${protocol} failed`, { cause: writeError ?? err });
  } finally {
    reader.detach();
  }
}

function remoteError(bytes: Uint8Array, protocol: string): HostError {
  let code = "UNKNOWN";
  let message = "";
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof parsed === "object" && parsed !== null) {
      const fields = parsed as { code?: unknown; message?: unknown };
      if (typeof fields.code === "string") code = fields.code;
      if (typeof fields.message === "string") message = fields.message;
    }
  } catch {
    return new HostError("STREAM_FAILED", "malformed error frame", { meta: { protocol } });
  }
  const meta = { protocol, remoteCode: code, remoteMessage: message, side: "remote" };
  if (code === "TOO_LARGE") return new HostError("TOO_LARGE", `the remote refused: ${message}`, { meta });
  return new HostError("REMOTE_ERROR", `the remote failed: ${code}`, { details: message || undefined, meta });
}
