/**
 * One key, two identities: an account's ed25519 key is also its libp2p peer id, so a validator's
 * gossip and its signed transactions are tied together without any extra binding message.
 * libp2p embeds an ed25519 public key in the peer id itself (an identity multihash), so the account
 * key is recovered from a peer id without a lookup.
 */
import { privateKeyFromRaw, publicKeyFromRaw } from "@libp2p/crypto/keys";
import type { Ed25519PeerId, Ed25519PrivateKey, PeerId, PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey, peerIdFromPublicKey, peerIdFromString } from "@libp2p/peer-id";
import { encodeAddress } from "./address.ts";
import { DeepshardError } from "./errors.ts";
import { KeyError, keyPairFromSecret, PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH } from "./keys.ts";

export type PeerIdErrorCode = "INVALID_PEER_ID" | "NOT_ED25519";

export class PeerIdError extends DeepshardError<PeerIdErrorCode> {
  override name = "PeerIdError";
}

/** The libp2p private key of an account's 32-byte secret seed (libp2p stores seed ‖ public key). */
export function libp2pPrivateKey(secretKey: Uint8Array): Ed25519PrivateKey {
  const { secretKey: seed, publicKey } = keyPairFromSecret(secretKey);
  const raw = new Uint8Array(SECRET_KEY_LENGTH + PUBLIC_KEY_LENGTH);
  raw.set(seed);
  raw.set(publicKey, SECRET_KEY_LENGTH);
  return privateKeyFromRaw(raw) as Ed25519PrivateKey;
}

/** The account's 32-byte secret seed inside a libp2p ed25519 private key. */
export function secretKeyFromLibp2p(privateKey: PrivateKey): Uint8Array {
  if (privateKey.type !== "Ed25519") {
    throw new PeerIdError("NOT_ED25519", `a ${privateKey.type} key cannot be a Deepshard account`);
  }
  return Uint8Array.from(privateKey.raw.subarray(0, SECRET_KEY_LENGTH));
}

/** The peer id of an account, from its secret seed. */
export function peerIdFromSecret(secretKey: Uint8Array): Ed25519PeerId {
  return peerIdFromPrivateKey(libp2pPrivateKey(secretKey));
}

/** The peer id of an account, from its 32-byte public key. */
export function peerIdFromAccount(publicKey: Uint8Array): Ed25519PeerId {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH) {
    throw new KeyError("INVALID_PUBLIC_KEY", `public key must be ${PUBLIC_KEY_LENGTH} bytes`);
  }
  return peerIdFromPublicKey(publicKeyFromRaw(publicKey)) as Ed25519PeerId;
}

/** The account's 32-byte public key inside a peer id (object or its string form). */
export function publicKeyFromPeerId(peerId: PeerId | string): Uint8Array {
  let id: PeerId;
  if (typeof peerId === "string") {
    try {
      id = peerIdFromString(peerId);
    } catch (err) {
      throw new PeerIdError("INVALID_PEER_ID", "not a libp2p peer id", {
        details: peerId.length > 80 ? `${peerId.slice(0, 80)}…` : peerId,
        cause: err,
      });
    }
  } else {
    id = peerId;
  }
  if (id.type !== "Ed25519") {
    throw new PeerIdError(
      "NOT_ED25519",
      `peer ${id.toString()} has a ${id.type} key, not an ed25519 account key`,
      {
        meta: { peerId: id.toString() },
      },
    );
  }
  return Uint8Array.from(id.publicKey.raw);
}

/** The account address of a peer. */
export function addressFromPeerId(peerId: PeerId | string): string {
  return encodeAddress(publicKeyFromPeerId(peerId));
}
