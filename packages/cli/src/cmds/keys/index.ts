import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import {
  DeepshardError,
  encodeAddress,
  generateKeyPair,
  parseKeystore,
  peerIdFromSecret,
  publicKeyFromSecret,
  readKeystore,
  writeKeystore,
} from "@deepshard/protocol";
import type { Command } from "commander";
import { printResult } from "../../util/output.ts";
import { resolvePassphrase } from "../../util/passphrase.ts";

interface KeysOptions {
  json?: boolean;
  passphraseFile?: string;
}

/** `deepshard keys new|show`: an account key is also the node's libp2p identity. */
export function registerKeys(program: Command): void {
  const keys = program
    .command("keys")
    .description("create and inspect encrypted account keys (the same key is the node's peer id)");

  keys
    .command("new")
    .description("create a new ed25519 account key in an encrypted key file")
    .argument("<file>", "where to write the key file (refuses to overwrite)")
    .option(
      "--passphrase-file <file>",
      "read the passphrase from a file (else DEEPSHARD_PASSPHRASE or a prompt)",
    )
    .option("--json", "print JSON")
    .addHelpText("after", "\nExample:\n  DEEPSHARD_PASSPHRASE=secret deepshard keys new ./alice.key")
    .action(async (file: string, options: KeysOptions) => {
      const passphrase = await resolvePassphrase(options, true);
      const pair = generateKeyPair();
      await writeKeystore(resolve(file), pair.secretKey, passphrase);
      const info = describe(pair.secretKey, file);
      printResult(options, info, () => `created ${file}\naddress ${info.address}\npeer id ${info.peerId}`);
    });

  keys
    .command("show")
    .description("print a key file's address; with --unlock also check the passphrase and print the peer id")
    .argument("<file>", "the key file")
    .option("--unlock", "decrypt the key to prove the passphrase and derive the peer id")
    .option(
      "--passphrase-file <file>",
      "read the passphrase from a file (else DEEPSHARD_PASSPHRASE or a prompt)",
    )
    .option("--json", "print JSON")
    .action(async (file: string, options: KeysOptions & { unlock?: boolean }) => {
      if (!options.unlock) {
        const text = await readFile(file, "utf8").catch((cause: unknown) => {
          throw new DeepshardError("READ_FAILED", `cannot read key file ${file}`, { cause });
        });
        const ks = parseKeystore(text);
        printResult(options, { file, address: ks.address }, () => `address ${ks.address}`);
        return;
      }
      const pair = await readKeystore(file, await resolvePassphrase(options));
      const info = describe(pair.secretKey, file);
      printResult(options, info, () => `address ${info.address}\npeer id ${info.peerId}`);
    });
}

function describe(secretKey: Uint8Array, file: string) {
  const address = encodeAddress(publicKeyFromSecret(secretKey));
  return { file, address, peerId: peerIdFromSecret(secretKey).toString() };
}
