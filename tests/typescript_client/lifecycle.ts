// One customer from start to Active through the onboarding HTTP API, with a client generated from
// the committed contract (openapi-typescript + openapi-fetch), as a partner's backend in
// TypeScript would: it starts the customer and waits for the KYC url in one request, reads it,
// receives the engine's signed events (Standard Webhooks, verified here with node:crypto), signs
// the documents the AwaitingSignings event names, and waits for Active.
//
//   API_URL, API_KEY        where the API is and the key to call it with
//   EVENTS_PORT, EVENTS_SECRET  where ONBOARDING_EVENTS_URL points, and the whsec_ secret
//   EXTERNAL_ID             the customer
//
// Prints one JSON line with what it saw; exits 0 once the customer is Active.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api.js";

type Onboarding = components["schemas"]["Onboarding"];

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const api = createClient<paths>({
  baseUrl: required("API_URL"),
  headers: { Authorization: `Bearer ${required("API_KEY")}` },
});
const externalId = required("EXTERNAL_ID");
const secret = Buffer.from(required("EVENTS_SECRET").replace(/^whsec_/, ""), "base64");

function verified(id: string, timestamp: string, body: string, signatures: string): boolean {
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const expected = createHmac("sha256", secret).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.split(" ").some((entry) => {
    const [version, signature] = entry.split(",", 2);
    const given = Buffer.from(signature ?? "", "base64");
    return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

const seen = { events: [] as string[], signed: [] as string[] };
const signing = new Set<string>();

async function sign(contentId: string): Promise<void> {
  // One key per document: a retry of this signing is the same request to the API.
  const { data, error, response } = await api.POST("/v1/onboardings/{external_id}/signings/{content_id}", {
    params: { path: { external_id: externalId, content_id: contentId }, header: { "Idempotency-Key": `ts-${externalId}-${contentId}` } },
  });
  if (data) seen.signed.push(data.content_id);
  else if (response.status !== 409) throw new Error(`signing ${contentId}: ${response.status} ${error?.type} ${error?.detail}`);
}

const events = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const header = (name: string) => String(request.headers[name] ?? "");
    if (!verified(header("webhook-id"), header("webhook-timestamp"), body, header("webhook-signature"))) {
      response.writeHead(401).end();
      return;
    }
    const event = JSON.parse(body) as { type: string; data: Onboarding & { sequence: number } };
    response.writeHead(200).end(); // acknowledge first; act afterwards
    if (event.data.external_id !== externalId) return;
    seen.events.push(`${event.data.sequence}:${event.data.phase}`);
    if (event.data.phase === "AwaitingSignings") {
      for (const document of (event.data.required_signings ?? []).filter((s) => !s.signed && !signing.has(s.id))) {
        signing.add(document.id);
        sign(document.id).catch((failure) => {
          console.error(String(failure));
          process.exitCode = 1;
        });
      }
    }
  });
});

async function main(): Promise<void> {
  await new Promise<void>((listening) => events.listen(Number(required("EVENTS_PORT")), "127.0.0.1", listening));

  const started = await api.POST("/v1/onboardings", {
    params: { query: { wait: "identification_url", timeout: 60 } },
    body: { external_id: externalId, email: `${externalId}@example.com`, name: "Ada Lovelace" },
  });
  if (!started.data) throw new Error(`start: ${started.response.status} ${started.error?.detail}`);
  if (started.response.status !== 201 || !started.data.onboarding.identification_url) {
    throw new Error(`start answered ${started.response.status} without the KYC url`);
  }

  const read = await api.GET("/v1/onboardings/{external_id}", { params: { path: { external_id: externalId } } });
  if (!read.data) throw new Error(`read: ${read.response.status} ${read.error?.detail}`);

  const active = await api.POST("/v1/onboardings/{external_id}/wait", {
    params: { path: { external_id: externalId } },
    body: { phases: ["Active"], timeout: 90 },
  });
  if (!active.data) throw new Error(`wait: ${active.response.status} ${active.error?.type} ${active.error?.detail}`);

  console.log(JSON.stringify({
    started: started.response.status,
    identification_url: started.data.onboarding.identification_url,
    read_phase: read.data.phase,
    final_phase: active.data.phase,
    signed: seen.signed,
    events: seen.events,
  }));
  events.close();
}

main().catch((failure) => {
  console.error(failure instanceof Error ? failure.message : String(failure));
  process.exit(1);
});
