/**
 * A connection gater whose rules change at run time: `block(peer)` refuses dials to and connections
 * from a peer (and, through the host, hangs up on it), `unblock(peer)` lets it connect again. Partition
 * tests cut the network with it; an optional `allow` hook adds any other policy.
 */
import type { ConnectionGater, MultiaddrConnection, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Multiaddr } from "@multiformats/multiaddr";

/** Whether a connection with `peer` (when known) over `addr` (when known) may proceed. */
export type ConnectionPolicy = (peer: PeerId | undefined, addr: Multiaddr | undefined) => boolean;

export class PeerGater {
  readonly #blocked = new Set<string>();
  #policy: ConnectionPolicy | undefined;
  /** Called after `block()`, so the host can close live connections to that peer. */
  onBlock: ((peer: PeerId) => void) | undefined;

  constructor(policy?: ConnectionPolicy) {
    this.#policy = policy;
  }

  block(peer: PeerId | string): void {
    const id = typeof peer === "string" ? peerIdFromString(peer) : peer;
    this.#blocked.add(id.toString());
    this.onBlock?.(id);
  }

  unblock(peer: PeerId | string): void {
    this.#blocked.delete(peer.toString());
  }

  isBlocked(peer: PeerId | string): boolean {
    return this.#blocked.has(peer.toString());
  }

  blocked(): string[] {
    return [...this.#blocked];
  }

  /** Replaces the extra policy (undefined removes it). */
  setPolicy(policy: ConnectionPolicy | undefined): void {
    this.#policy = policy;
  }

  allows(peer: PeerId | undefined, addr: Multiaddr | undefined): boolean {
    const id = peer?.toString() ?? peerOf(addr);
    if (id !== undefined && this.#blocked.has(id)) return false;
    return this.#policy ? this.#policy(peer, addr) : true;
  }

  /** The libp2p view of this gater; every hook returns true to deny. */
  toConnectionGater(): ConnectionGater {
    const deny = (peer: PeerId | undefined, addr: Multiaddr | undefined) => !this.allows(peer, addr);
    return {
      denyDialPeer: (peer) => deny(peer, undefined),
      denyDialMultiaddr: (addr) => deny(undefined, addr),
      denyInboundConnection: (conn: MultiaddrConnection) => deny(undefined, conn.remoteAddr),
      denyOutboundConnection: (peer, conn) => deny(peer, conn.remoteAddr),
      denyInboundEncryptedConnection: (peer, conn) => deny(peer, conn.remoteAddr),
      denyOutboundEncryptedConnection: (peer, conn) => deny(peer, conn.remoteAddr),
      denyInboundUpgradedConnection: (peer, conn) => deny(peer, conn.remoteAddr),
      denyOutboundUpgradedConnection: (peer, conn) => deny(peer, conn.remoteAddr),
    };
  }
}

function peerOf(addr: Multiaddr | undefined): string | undefined {
  return addr?.getComponents().findLast((c) => c.name === "p2p")?.value;
}
