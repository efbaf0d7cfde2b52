/**
 * The serving end of the request/response benchmark (bench/host.ts), in its own process as a holder
 * is on a real network: a libp2p host answering every request on the bench protocol with one pre-built
 * blob, and a raw node:net server writing the same bytes behind a 4-byte length.
 *
 * Usage: `node bench/host-server.ts <bytes>`. Prints one JSON line `{"multiaddr","port"}` on stdout once
 * both listen; answers each stdin line `cpu` with a line `{"cpuMs"}` (its CPU time so far, all threads);
 * stops and exits when its stdin closes (the parent ended it or died).
 */
import { createServer, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { createHost } from "@deepshard/protocol/host";

export const BLOB_PROTOCOL = "/deepshard/bench/blob/1";

/** The same bytes in the parent and the child, so the parent can spot-check what it received. */
export function benchBlob(size: number): Uint8Array {
  const blob = new Uint8Array(size);
  for (let i = 0; i < size; i += 997) blob[i] = i & 0xff;
  return blob;
}

/** Answers every connection's first bytes with a 4-byte length and the blob, then ends it. */
export function rawBlobServer(blob: Uint8Array) {
  return createServer((socket: Socket) => {
    socket.once("data", () => {
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, blob.byteLength);
      socket.write(header);
      socket.end(blob);
    });
  });
}

async function main(size: number): Promise<void> {
  const blob = benchBlob(size);
  const host = await createHost();
  await host.handle(BLOB_PROTOCOL, () => blob, { maxResponseBytes: size });
  const raw = rawBlobServer(blob);
  await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
  const address = raw.address();
  if (address === null || typeof address === "string") throw new Error("raw server: no port");
  process.stdout.write(`${JSON.stringify({ multiaddr: `${host.addresses()[0]}`, port: address.port })}\n`);

  const stop = async () => {
    raw.close();
    await host.stop();
    process.exit(0);
  };
  const commands = createInterface({ input: process.stdin });
  commands.on("line", (line) => {
    if (line.trim() !== "cpu") return;
    const { user, system } = process.cpuUsage();
    process.stdout.write(`${JSON.stringify({ cpuMs: (user + system) / 1000 })}\n`);
  });
  commands.on("close", stop);
}

if (import.meta.main) {
  const size = Number(process.argv[2]);
  if (!Number.isSafeInteger(size) || size <= 0) {
    process.stderr.write("usage: host-server.ts <bytes>\n");
    process.exit(2);
  }
  await main(size);
}
