/**
 * libp2p's TLS 1.3 connection encryption — @libp2p/tls's handshake, certificate and early muxer
 * negotiation, the same bytes on the wire — with OpenSSL reading and writing the TCP socket itself.
 *
 * @libp2p/tls runs node:tls over a JavaScript duplex, so every encrypted byte crosses into JavaScript
 * and back: a copy into a new buffer per record sent, a buffer per socket read received, and garbage for
 * V8 to collect in proportion. When the connection underneath is @libp2p/tcp's node:net socket with
 * nothing buffered, this encrypter hands that socket to node:tls the way node's own https server does,
 * and only plaintext reaches JavaScript: a 64 MiB response costs the sending end about a fifth of the
 * CPU time of either @libp2p/tls or noise (packages/protocol/README.md, "Benchmarks"). Any other
 * connection goes through @libp2p/tls unchanged.
 */
import { Socket } from "node:net";
import { connect, createSecureContext, type SecureContext, TLSSocket } from "node:tls";
import type {
  ComponentLogger,
  ConnectionEncrypter,
  Logger,
  MessageStream,
  PrivateKey,
  SecureConnectionOptions,
  SecuredConnection,
  StreamMuxerFactory,
  Upgrader,
} from "@libp2p/interface";
import { InvalidCryptoExchangeError, TimeoutError } from "@libp2p/interface";

/**
 * @libp2p/tls and its X.509 stack load on the first connection, not with the host: they add about 60 ms
 * to the start of every process that imports the host.
 */
type TlsUtils = typeof import("@libp2p/tls/utils");
let tlsUtils: Promise<TlsUtils> | undefined;
const loadTlsUtils = () => {
  tlsUtils ??= import("@libp2p/tls/utils");
  return tlsUtils;
};

const PROTOCOL = "/tls/1.0.0";
/** The ALPN name of a peer that does not choose the muxer during the handshake. */
const NO_EARLY_MUXER = "libp2p";

export interface TlsComponents {
  privateKey: PrivateKey;
  logger: ComponentLogger;
  upgrader: Upgrader;
}

/** The connection encrypter for `createLibp2p({ connectionEncrypters })`. */
export function nativeTls(): (components: TlsComponents) => ConnectionEncrypter {
  return (components) => new NativeTls(components);
}

/** @libp2p/tcp's connection keeps its socket in a public field that its types leave out. */
interface TcpConnection extends MessageStream {
  socket?: unknown;
}

class NativeTls implements ConnectionEncrypter {
  readonly protocol = PROTOCOL;
  readonly #components: TlsComponents;
  #fallback: Promise<ConnectionEncrypter> | undefined;
  readonly #log: Logger;
  /**
   * One certificate for every connection of this host, as go-libp2p does (@libp2p/tls makes one per
   * connection): it only binds a throwaway P-256 key to the host's libp2p key.
   */
  #context: Promise<SecureContext> | undefined;

  constructor(components: TlsComponents) {
    this.#components = components;
    this.#log = components.logger.forComponent("deepshard:tls");
  }

  secureInbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    const tcp = claimSocket(connection);
    if (!tcp) return this.#libp2pTls().then((tls) => tls.secureInbound(connection, options));
    return this.#encrypt(connection, tcp, true, options);
  }

  secureOutbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    const tcp = claimSocket(connection);
    if (!tcp) return this.#libp2pTls().then((tls) => tls.secureOutbound(connection, options));
    return this.#encrypt(connection, tcp, false, options);
  }

  #libp2pTls(): Promise<ConnectionEncrypter> {
    this.#fallback ??= import("@libp2p/tls").then(({ tls }) => tls()(this.#components));
    return this.#fallback;
  }

  #secureContext(): Promise<SecureContext> {
    this.#context ??= loadTlsUtils()
      .then(({ generateCertificate }) => generateCertificate(this.#components.privateKey))
      .then(
        ({ cert, key }) => createSecureContext({ cert, key, minVersion: "TLSv1.3", maxVersion: "TLSv1.3" }),
        (err: unknown) => {
          this.#context = undefined;
          throw err;
        },
      );
    return this.#context;
  }

  async #encrypt(
    connection: MessageStream,
    tcp: Socket,
    isServer: boolean,
    options: SecureConnectionOptions = {},
  ): Promise<SecuredConnection> {
    const log = this.#log;
    const muxers = this.#components.upgrader.getStreamMuxers();
    const negotiate = options.skipStreamMuxerNegotiation !== true;
    let streamMuxer: StreamMuxerFactory | undefined;
    let secureContext: SecureContext;
    let utils: TlsUtils;
    try {
      [secureContext, utils] = await Promise.all([this.#secureContext(), loadTlsUtils()]);
      options.signal?.throwIfAborted();
    } catch (err) {
      connection.abort(asError(err));
      throw err;
    }
    const tlsOptions = {
      secureContext,
      // Certificates are self-signed; the libp2p key and signature inside authenticate the peer (below).
      rejectUnauthorized: false,
      ALPNProtocols: [...(negotiate ? muxers.keys() : []), NO_EARLY_MUXER],
      ALPNCallback: ({ protocols }: { protocols: string[] }) => {
        let chosen: string | undefined;
        for (const protocol of protocols) {
          if (protocol === NO_EARLY_MUXER) chosen = NO_EARLY_MUXER;
          streamMuxer = muxers.get(protocol);
          if (streamMuxer) return protocol;
        }
        return chosen;
      },
    };
    // A server asks for the client's certificate: it carries the client's libp2p key.
    const socket = isServer
      ? new TLSSocket(tcp, { ...tlsOptions, isServer, requestCert: true })
      : connect({ ...tlsOptions, socket: tcp });
    closeThroughTls(tcp, socket);
    // The TCP socket sees no JavaScript activity any more, so its inactivity timer moves here.
    if (connection.inactivityTimeout > 0) {
      socket.setTimeout(connection.inactivityTimeout, () => connection.abort(new TimeoutError()));
    }
    // Stays listening once settled: an error between the handshake and the encrypted connection's own
    // listener must not go unhandled.
    const failed = new Promise<never>((_, reject) => {
      socket.on("error", reject);
      socket.once("close", () => reject(new InvalidCryptoExchangeError("the connection closed")));
    });
    const onAbort = () => socket.destroy(new InvalidCryptoExchangeError("the TLS handshake was aborted"));
    options.signal?.addEventListener("abort", onAbort);
    try {
      await Promise.race([new Promise((resolve) => socket.once("secure", resolve)), failed]);
      const certificate = socket.getPeerCertificate().raw;
      const remotePeer = await Promise.race([
        utils.verifyPeerCertificate(certificate, options.remotePeer, log),
        failed,
      ]);
      if (!isServer && negotiate && socket.alpnProtocol && socket.alpnProtocol !== NO_EARLY_MUXER) {
        streamMuxer = muxers.get(socket.alpnProtocol);
        if (!streamMuxer) {
          throw new InvalidCryptoExchangeError(`the selected muxer ${socket.alpnProtocol} does not exist`);
        }
      }
      return {
        remotePeer,
        connection: utils.toMessageStream(connection, socket),
        ...(streamMuxer ? { streamMuxer } : {}),
      };
    } catch (err) {
      log.error("securing the %s connection failed - %e", connection.direction, err);
      socket.destroy();
      connection.abort(asError(err));
      throw err;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * The node:net socket under `connection` when node:tls can take it over (nothing read into the
 * connection and not yet consumed, nothing written to it and not yet sent), detached from the
 * connection: from here on the connection no longer reads it, and bytes arriving before the TLS socket
 * exists wait in the paused socket, where node:tls picks them up.
 */
function claimSocket(connection: MessageStream): Socket | undefined {
  const tcp = (connection as TcpConnection).socket;
  if (!(tcp instanceof Socket) || tcp.destroyed) return undefined;
  if (connection.readBufferLength > 0 || connection.writeBufferLength > 0) return undefined;
  tcp.removeAllListeners("data");
  tcp.pause();
  tcp.setTimeout(0);
  return tcp;
}

/**
 * Routes every way of closing the TCP socket through `tls`. Node 24 crashes (SIGSEGV) when a socket is
 * destroyed under a live TLS socket and the TLS socket right after, which is what libp2p does when it
 * aborts the plaintext connection (a gater refusing the peer after the handshake) and the encrypted
 * connection follows. Closing the TLS socket closes the TCP socket too; only the RST of
 * `resetAndDestroy` is lost.
 */
function closeThroughTls(tcp: Socket, tls: TLSSocket): void {
  const destroy = tcp.destroy;
  tcp.destroy = function (this: Socket, error?: Error) {
    if (tls.destroyed) return destroy.call(this, error);
    tls.destroy(error);
    return this;
  };
  tcp.resetAndDestroy = function (this: Socket) {
    return this.destroy();
  };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
