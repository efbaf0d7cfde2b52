import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  ExternalJudge,
  ExternalJudgeError,
  MinHashIndex,
  parseJudgeAnswer,
  scoreSubmission,
} from "../src/index.ts";

/** A real OpenAI-compatible endpoint on loopback whose behaviour each test sets. */
let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
});

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => handler(req, res, body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

function completion(content: string): string {
  return JSON.stringify({
    id: "x",
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content } }],
  });
}

const enc = new TextEncoder();
const TEXT = "The Earth travels around the Sun once a year.";

describe("external judge", () => {
  it("sends an OpenAI chat completion request and reads the scores", async () => {
    let seen: {
      url?: string;
      auth?: string;
      body?: { model: string; messages: Array<{ content: string }> };
    } = {};
    const baseUrl = await serve((req, res, body) => {
      seen = { url: req.url!, auth: req.headers.authorization!, body: JSON.parse(body) };
      res.setHeader("content-type", "application/json");
      res.end(completion('Sure: {"alignment": 9, "truthfulness": 8, "objectivity": 10}'));
    });
    const judge = new ExternalJudge({ baseUrl, model: "judge-1", apiKey: "k" });
    expect(await judge.rate(TEXT)).toEqual({ alignment: 0.9, truthfulness: 0.8, objectivity: 1 });
    expect(seen.url).toBe("/v1/chat/completions");
    expect(seen.auth).toBe("Bearer k");
    expect(seen.body!.model).toBe("judge-1");
    expect(seen.body!.messages[1]!.content).toBe(TEXT);

    const scored = await scoreSubmission(enc.encode(TEXT), { corpus: new MinHashIndex() }, { judge });
    expect(scored.judge).toEqual({ used: true });
    expect(scored.scores.truthfulness).toBe(8_000);
  });

  it("retries server errors, then succeeds", async () => {
    let calls = 0;
    const baseUrl = await serve((_req, res) => {
      calls++;
      if (calls < 3) {
        res.statusCode = 503;
        res.end("busy");
        return;
      }
      res.end(completion('{"alignment": 5, "truthfulness": 5, "objectivity": 5}'));
    });
    const judge = new ExternalJudge({ baseUrl, model: "m", retries: 2, backoffMs: 5 });
    expect((await judge.rate(TEXT)).alignment).toBe(0.5);
    expect(calls).toBe(3);
  });

  it("gives typed errors: unreachable, timeout, HTTP error (no retry on 4xx), bad answer", async () => {
    const closed = await serve(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    await expect(
      new ExternalJudge({ baseUrl: closed, model: "m", retries: 0 }).rate(TEXT),
    ).rejects.toMatchObject({
      code: "UNREACHABLE",
    });

    const slow = await serve((_req, res) => setTimeout(() => res.end(completion("{}")), 2_000));
    await expect(
      new ExternalJudge({ baseUrl: slow, model: "m", retries: 0, timeoutMs: 100 }).rate(TEXT),
    ).rejects.toMatchObject({ code: "TIMEOUT" });

    let calls = 0;
    const denied = await serve((_req, res) => {
      calls++;
      res.statusCode = 401;
      res.end("no key");
    });
    await expect(
      new ExternalJudge({ baseUrl: denied, model: "m", backoffMs: 1 }).rate(TEXT),
    ).rejects.toMatchObject({
      code: "HTTP_ERROR",
    });
    expect(calls).toBe(1);

    expect(() => parseJudgeAnswer("not json")).toThrow(ExternalJudgeError);
    expect(() => parseJudgeAnswer(completion("I refuse"))).toThrow(/no valid score for alignment/);
    expect(() =>
      parseJudgeAnswer(completion('{"alignment": 11, "truthfulness": 1, "objectivity": 1}')),
    ).toThrow(ExternalJudgeError);
  });

  it("scoring still completes with the heuristics when the judge fails", async () => {
    const broken = await serve((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const judge = new ExternalJudge({ baseUrl: broken, model: "m", retries: 1, backoffMs: 1 });
    const scored = await scoreSubmission(enc.encode(TEXT), { corpus: new MinHashIndex() }, { judge });
    expect(scored.judge.used).toBe(false);
    expect(scored.judge.error).toMatch(/HTTP 500/);
    expect(scored.scores.novelty).toBe(10_000);
    expect(scored.scores.alignment).toBe(7_500);
  });
});
