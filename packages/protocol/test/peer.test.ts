import { generateKeyPairFromSeed, generateKeyPair as libp2pGenerateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey, peerIdFromString } from "@libp2p/peer-id";
import { describe, expect, it } from "vitest";
import {
  addressFromPeerId,
  encodeAddress,
  generateKeyPair,
  isDeepshardError,
  keyPairFromSecret,
  libp2pPrivateKey,
  PeerIdError,
  peerIdFromAccount,
  peerIdFromSecret,
  publicKeyFromPeerId,
  secretKeyFromLibp2p,
  sign,
  verify,
} from "../src/index.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("peer ids", () => {
  it("are the same key as the account, both ways", async () => {
    const { secretKey, publicKey } = generateKeyPair();
    const peerId = peerIdFromSecret(secretKey);
    expect(peerId.type).toBe("Ed25519");
    expect(hex(publicKeyFromPeerId(peerId))).toBe(hex(publicKey));
    expect(hex(publicKeyFromPeerId(peerId.toString()))).toBe(hex(publicKey));
    expect(peerIdFromAccount(publicKey).equals(peerId)).toBe(true);
    expect(addressFromPeerId(peerId)).toBe(encodeAddress(publicKey));

    // libp2p's own derivation from the same seed agrees
    const theirs = await generateKeyPairFromSeed("Ed25519", secretKey);
    expect(peerIdFromPrivateKey(theirs).equals(peerId)).toBe(true);
    expect(hex(secretKeyFromLibp2p(libp2pPrivateKey(secretKey)))).toBe(hex(secretKey));
  });

  it("sign the same bytes through libp2p as through our keys", async () => {
    const { secretKey, publicKey } = keyPairFromSecret(new Uint8Array(32).fill(3));
    const msg = new TextEncoder().encode("gossip");
    const viaLibp2p = await libp2pPrivateKey(secretKey).sign(msg);
    expect(hex(viaLibp2p)).toBe(hex(sign(secretKey, msg)));
    expect(verify(viaLibp2p, msg, publicKey)).toBe(true);
  });

  it("give a libp2p-generated key a Deepshard account", async () => {
    const key = await libp2pGenerateKeyPair("Ed25519");
    const secret = secretKeyFromLibp2p(key);
    expect(hex(keyPairFromSecret(secret).publicKey)).toBe(hex(key.publicKey.raw));
    expect(peerIdFromSecret(secret).equals(peerIdFromPrivateKey(key))).toBe(true);
  });

  it("refuse peer ids that hold no ed25519 key, and garbage", async () => {
    const secp = await libp2pGenerateKeyPair("secp256k1");
    const secpId = peerIdFromPrivateKey(secp);
    for (const id of [secpId, secpId.toString()]) {
      try {
        publicKeyFromPeerId(id);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(PeerIdError);
        expect((err as PeerIdError).code).toBe("NOT_ED25519");
      }
    }
    expect(() => secretKeyFromLibp2p(secp)).toThrow(PeerIdError);
    for (const bad of ["", "not a peer id", "12D3KooW", "x".repeat(10_000)]) {
      try {
        publicKeyFromPeerId(bad);
        expect.unreachable();
      } catch (err) {
        expect(isDeepshardError(err, "INVALID_PEER_ID")).toBe(true);
      }
    }
    expect(() => peerIdFromAccount(new Uint8Array(31))).toThrow(
      expect.objectContaining({ code: "INVALID_PUBLIC_KEY" }),
    );
    expect(() => peerIdFromSecret(new Uint8Array(5))).toThrow(
      expect.objectContaining({ code: "INVALID_SECRET_KEY" }),
    );
    // a well-formed peer id string round-trips through libp2p's parser
    const id = peerIdFromSecret(generateKeyPair().secretKey).toString();
    expect(peerIdFromString(id).toString()).toBe(id);
  });
});
