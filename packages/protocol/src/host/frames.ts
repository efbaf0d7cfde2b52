/**
 * Length-prefixed frames over a libp2p 3 stream. In libp2p 3 a stream is an event emitter that pushes
 * `message` events (no pull-based source), so this reader keeps its own small queue, pauses the stream
 * when the consumer falls behind, and copies a declared body straight into its final buffer: a 64 MiB
 * blob costs one 64 MiB allocation on the receiving side and none on the sending side.
 */
import type { Stream, StreamCloseEvent, StreamMessageEvent } from "@libp2p/interface";
import { abortError, HostError } from "./errors.ts";

/**
 * Bodies are sent in slices of this size so that backpressure and aborts take effect between slices. A
 * slice becomes one yamux frame (two when the send window cuts it), and the receiver answers each frame
 * with a window update: 4 MiB slices take about 15% off the receiver's CPU time per 64 MiB against 1 MiB
 * ones. A frame holds back other streams on the connection while it is sent: 4 MiB is a few
 * milliseconds on loopback.
 */
const SEND_SLICE = 4 << 20;
/** Pause the stream (yamux then stops granting window) above this many queued bytes; resume below. */
const PAUSE_ABOVE = 8 << 20;
const RESUME_BELOW = 1 << 20;
/** A length varint has at most 8 bytes (56 bits cover every safe integer). */
const MAX_VARINT_BYTES = 8;
/**
 * Bytes that may still arrive while the stream is paused: yamux's largest receive window (16 MiB) plus
 * our queue. libp2p resets a paused stream whose buffer passes `maxReadBufferLength`.
 */
const MAX_READ_BUFFER = (16 << 20) + PAUSE_ABOVE;

export function encodeVarint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint out of range: ${value}`);
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** Reads frames from a stream; call `detach()` when done so the stream's listeners are removed. */
export class StreamReader {
  readonly #stream: Stream;
  readonly #chunks: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(stream: Stream) {
    this.#stream = stream;
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, MAX_READ_BUFFER);
    stream.addEventListener("message", this.#onMessage);
    stream.addEventListener("close", this.#onClose);
    stream.addEventListener("remoteCloseWrite", this.#onEnd);
    if (stream.remoteWriteStatus !== "writable" && stream.readBufferLength === 0) this.#ended = true;
  }

  detach(): void {
    this.#stream.removeEventListener("message", this.#onMessage);
    this.#stream.removeEventListener("close", this.#onClose);
    this.#stream.removeEventListener("remoteCloseWrite", this.#onEnd);
  }

  async readByte(signal: AbortSignal): Promise<number> {
    await this.#ready(signal);
    const head = this.#chunks[0]!;
    const byte = head[0]!;
    this.#consume(1);
    return byte;
  }

  /** Reads an unsigned LEB128 length (the multiformats unsigned-varint). */
  async readVarint(signal: AbortSignal): Promise<number> {
    let value = 0;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const byte = await this.readByte(signal);
      value += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) break;
        return value;
      }
    }
    throw new HostError("STREAM_FAILED", "malformed length prefix", {
      details: `a length prefix is at most ${MAX_VARINT_BYTES} bytes and below 2^53`,
    });
  }

  /** Reads exactly `length` bytes into one new buffer, copying each arriving chunk once. */
  async readExactly(length: number, signal: AbortSignal): Promise<Uint8Array> {
    // Not zero-filled: it is returned only once every byte has been written.
    const slow = Buffer.allocUnsafeSlow(length);
    const out = new Uint8Array(slow.buffer, slow.byteOffset, length);
    let filled = 0;
    while (filled < length) {
      await this.#ready(signal);
      const head = this.#chunks[0]!;
      const take = Math.min(head.byteLength, length - filled);
      out.set(take === head.byteLength ? head : head.subarray(0, take), filled);
      filled += take;
      this.#consume(take);
    }
    return out;
  }

  /** Waits until some bytes are queued; throws when the stream ended, failed or the signal aborted. */
  async #ready(signal: AbortSignal): Promise<void> {
    while (this.#queued === 0) {
      if (signal.aborted) throw abortError(signal, "reading from the stream");
      if (this.#failure) {
        throw new HostError("STREAM_FAILED", "the stream was reset", { cause: this.#failure });
      }
      if (this.#ended) throw new HostError("STREAM_FAILED", "the stream ended early");
      await new Promise<void>((resolve) => {
        const onAbort = () => wake();
        const wake = () => {
          signal.removeEventListener("abort", onAbort);
          this.#wake = undefined;
          resolve();
        };
        this.#wake = wake;
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  #consume(n: number): void {
    const head = this.#chunks[0]!;
    if (n === head.byteLength) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    this.#queued -= n;
    if (this.#stream.readStatus === "paused" && this.#queued < RESUME_BELOW) this.#stream.resume();
  }

  readonly #onMessage = (evt: StreamMessageEvent): void => {
    const data = evt.data;
    if (data instanceof Uint8Array) this.#chunks.push(data);
    else for (const chunk of data) this.#chunks.push(chunk);
    this.#queued += data.byteLength;
    if (this.#queued > PAUSE_ABOVE && this.#stream.readStatus === "readable") this.#stream.pause();
    this.#wake?.();
  };

  readonly #onClose = (evt: StreamCloseEvent): void => {
    if (evt.error) this.#failure = evt.error;
    this.#ended = true;
    this.#wake?.();
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#wake?.();
  };
}

/** Sends `header` then `body` in slices, waiting for the stream to drain whenever its buffer is full. */
export async function sendFrame(
  stream: Stream,
  header: Uint8Array,
  body: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  await sendChunk(stream, header, signal);
  for (let offset = 0; offset < body.byteLength; offset += SEND_SLICE) {
    await sendChunk(stream, body.subarray(offset, offset + SEND_SLICE), signal);
  }
}

async function sendChunk(stream: Stream, chunk: Uint8Array, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw abortError(signal, "writing to the stream");
  if (stream.writeStatus !== "writable") throw new HostError("STREAM_FAILED", "the stream is closed");
  if (!stream.send(chunk)) await drained(stream, signal);
}

/**
 * Waits for the stream's next `drain` event. Not `stream.onDrain()`: @libp2p/utils 7.4 keeps the promise
 * of the first drain and returns it, already resolved, to every later caller, so after one drain a
 * writer would queue its whole body at once and yamux would send it as window-sized frames (16 MiB) that
 * the receiver acknowledges only when complete — one frame in flight, the two ends taking turns.
 */
function drained(stream: Stream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (err?: Error) => {
      stream.removeEventListener("drain", onDrain);
      stream.removeEventListener("close", onClose);
      signal.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = (evt: StreamCloseEvent) =>
      settle(new HostError("STREAM_FAILED", "the stream closed while writing", { cause: evt.error }));
    const onAbort = () => settle(abortError(signal, "writing to the stream"));
    stream.addEventListener("drain", onDrain);
    stream.addEventListener("close", onClose);
    signal.addEventListener("abort", onAbort);
  });
}
