// Feedback: event ids, de-duplication across retries, keepalive, beacons, batching.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { BlendserveClient, MAX_EVENTS_PER_REQUEST, MAX_KEEPALIVE_BYTES } from "../src/index.js";
import { newEventId } from "../src/events.js";
import { INFER_KEY, fakeSleep, recordingFetch, startFakeApi } from "./helpers.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let api;
before(async () => {
  api = await startFakeApi();
});
after(() => api.close());

function client(options = {}) {
  return new BlendserveClient({ baseUrl: api.url, apiKey: INFER_KEY, ...options });
}

/** Puts a fake `navigator.sendBeacon` on the global object for one test. */
function fakeBeacon(t, accept = true) {
  const sent = [];
  const original = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", {
    configurable: true,
    value: {
      sendBeacon(url, blob) {
        sent.push({ url, blob });
        return accept;
      },
    },
  });
  t.after(() => {
    if (original) Object.defineProperty(globalThis, "navigator", original);
    else delete globalThis.navigator;
  });
  return sent;
}

test("feedback gives every event an event_id and keeps the ones given", async () => {
  const result = await client().feedback([
    { result_id: "rid-1", event: "impression" },
    { result_id: "rid-1", event: "click", event_id: "mine-1" },
  ]);
  assert.deepEqual(result, { accepted: 2, duplicates: 0, rejected: [] });
  const [first, second] = api.requests.at(-1).body.events;
  assert.match(first.event_id, UUID);
  assert.equal(second.event_id, "mine-1");
});

test("event ids are v4 UUIDs without crypto.randomUUID too (plain-http pages, Node 18)", (t) => {
  const original = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  t.after(() => Object.defineProperty(globalThis, "crypto", original));
  const { getRandomValues } = globalThis.crypto;
  Object.defineProperty(globalThis, "crypto", {
    configurable: true,
    value: { getRandomValues: getRandomValues.bind(globalThis.crypto) },
  });
  const fromRandomValues = newEventId();
  Object.defineProperty(globalThis, "crypto", { configurable: true, value: undefined });
  const fromMathRandom = newEventId();
  for (const id of [fromRandomValues, fromMathRandom]) assert.match(id, UUID);
  assert.notEqual(newEventId(), fromMathRandom);
});

test("a single event object is sent as a batch of one", async () => {
  await client().feedback({ result_id: "rid-2", event: "conversion", value: 9.5, ts: new Date(0) });
  const [event] = api.requests.at(-1).body.events;
  assert.equal(event.value, 9.5);
  assert.equal(event.ts, "1970-01-01T00:00:00.000Z");
});

test("a retried request resends the same event ids, so the server stores each event once", async () => {
  const { sleep } = fakeSleep();
  // The server stores the events, then the answer is lost (503): the retry must not
  // store them again.
  api.script("/v1/feedback", { status: 503, retryAfter: "0", store: true });
  const storedBefore = api.stored.size;
  const result = await client({ sleep }).feedback([
    { result_id: "rid-3", event: "impression" },
    { result_id: "rid-3", event: "click" },
  ]);
  const [first, retry] = api.requests.slice(-2).map((r) => r.body.events.map((e) => e.event_id));
  assert.deepEqual(first, retry);
  assert.deepEqual(result, { accepted: 0, duplicates: 2, rejected: [] });
  assert.equal(api.stored.size - storedBefore, 2);
});

test("refused entries come back in rejected; the others are stored, nothing is thrown", async () => {
  const result = await client().feedback([
    { result_id: "rid-4", event: "click" },
    { result_id: "bad-id", event: "click" },
  ]);
  assert.equal(result.accepted, 1);
  assert.deepEqual(result.rejected, [{ index: 1, field: "events.1.result_id", message: "forged" }]);
});

test("more events than one request takes are split; rejected indices count from the first", async () => {
  const events = Array.from({ length: MAX_EVENTS_PER_REQUEST + 5 }, (_, i) => ({
    result_id: i === MAX_EVENTS_PER_REQUEST + 2 ? "bad-late" : `rid-split-${i}`,
    event: "impression",
  }));
  const sent = api.requests.length;
  const result = await client().feedback(events);
  assert.deepEqual(
    api.requests.slice(sent).map((r) => r.body.events.length),
    [MAX_EVENTS_PER_REQUEST, 5],
  );
  assert.equal(result.accepted, MAX_EVENTS_PER_REQUEST + 4);
  assert.deepEqual(result.rejected, [
    {
      index: MAX_EVENTS_PER_REQUEST + 2,
      field: `events.${MAX_EVENTS_PER_REQUEST + 2}.result_id`,
      message: "forged",
    },
  ]);
});

test("keepalive bodies stay under the browsers' 64 KiB limit", async () => {
  const long = "r".repeat(2000);
  const ids = Array.from({ length: 100 }, (_, i) => `${long}-${i}`);
  const { fetch, calls } = recordingFetch();
  const result = await client({ fetch }).impression(ids);
  assert.equal(result.accepted, 100);
  assert.ok(calls.length > 1);
  for (const { init } of calls) {
    assert.equal(init.keepalive, true);
    assert.ok(new TextEncoder().encode(init.body).length <= MAX_KEEPALIVE_BYTES + 100);
  }
});

test("click sends one click with keepalive and the key", async () => {
  const { fetch, calls } = recordingFetch();
  const result = await client({ fetch }).click("rid-5");
  assert.equal(result.accepted, 1);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].init.keepalive, true);
  assert.equal(calls[0].init.headers.Authorization, `Bearer ${INFER_KEY}`);
  const [event] = JSON.parse(calls[0].init.body).events;
  assert.equal(event.event, "click");
  assert.equal(event.result_id, "rid-5");
  assert.match(event.event_id, UUID);
});

test("click starts its request before returning, so a link's navigation cannot cancel it", async () => {
  const { fetch, calls } = recordingFetch();
  const sent = client({ fetch }).click("rid-5b");
  assert.equal(calls.length, 1, "fetch was called synchronously, inside the click handler");
  await sent;
});

test("impression and conversion send their events with keepalive", async () => {
  const { fetch, calls } = recordingFetch();
  const c = client({ fetch });
  await c.impression(["rid-6", "rid-7"]);
  await c.conversion("rid-6", 12.5);
  assert.ok(calls.every((call) => call.init.keepalive === true));
  assert.deepEqual(
    calls.flatMap((call) =>
      JSON.parse(call.init.body).events.map((e) => [e.result_id, e.event, e.value]),
    ),
    [
      ["rid-6", "impression", undefined],
      ["rid-7", "impression", undefined],
      ["rid-6", "conversion", 12.5],
    ],
  );
  await assert.rejects(c.conversion("rid-6", Number.NaN), /value: expected a finite number/);
  await assert.rejects(c.click(""), /resultId: expected the item's result_id/);
});

test("without beaconUrl, click ignores sendBeacon (it cannot carry the key)", async (t) => {
  const beacons = fakeBeacon(t);
  const result = await client().click("rid-8");
  assert.equal(result.accepted, 1);
  assert.equal(beacons.length, 0);
});

test("with beaconUrl, click hands a JSON Blob of events to sendBeacon", async (t) => {
  const beacons = fakeBeacon(t);
  const { fetch, calls } = recordingFetch();
  const result = await client({ fetch, beaconUrl: "/api/blendserve-feedback" }).click("rid-9");
  assert.deepEqual(result, { beacon: true, queued: true });
  assert.equal(calls.length, 0);
  assert.equal(beacons[0].url, "/api/blendserve-feedback");
  assert.equal(beacons[0].blob.type, "application/json");
  const body = JSON.parse(await beacons[0].blob.text());
  assert.equal(body.events[0].result_id, "rid-9");
  assert.match(body.events[0].event_id, UUID);
});

test("beacon: false, or a full beacon queue, sends with keepalive fetch and the same event id", async (t) => {
  const beacons = fakeBeacon(t, false);
  const { fetch, calls } = recordingFetch();
  const c = client({ fetch, beaconUrl: "/api/blendserve-feedback" });
  const result = await c.click("rid-10");
  assert.equal(result.accepted, 1);
  const beaconed = JSON.parse(await beacons[0].blob.text()).events[0].event_id;
  assert.equal(JSON.parse(calls[0].init.body).events[0].event_id, beaconed);
  await c.click("rid-11", { beacon: false });
  assert.equal(beacons.length, 1);
  assert.equal(calls.length, 2);
});

test("the fake beacons above were removed again", () => {
  assert.equal(globalThis.navigator?.sendBeacon, undefined);
});
