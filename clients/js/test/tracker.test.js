// ImpressionTracker with a fake IntersectionObserver, fake timers and a fake page.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BlendserveClient, ImpressionTracker } from "../src/index.js";
import {
  INFER_KEY,
  fakeIntersectionObserver,
  fakePage,
  fakeTimers,
  recordingFetch,
  startFakeApi,
  waitFor,
} from "./helpers.js";

/** A client stand-in that records what the tracker sends. */
function recordingClient({ fail = false } = {}) {
  const batches = [];
  return {
    batches,
    async impression(ids) {
      batches.push(ids);
      if (fail) throw new Error("network down");
      return { accepted: ids.length, duplicates: 0, rejected: [] };
    },
  };
}

function setup(options = {}, clientOptions = {}) {
  const io = fakeIntersectionObserver();
  const timers = fakeTimers();
  const page = fakePage();
  const client = recordingClient(clientOptions);
  const tracker = new ImpressionTracker(client, {
    IntersectionObserver: io.IntersectionObserver,
    document: page.document,
    window: page.window,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    ...options,
  });
  return { io, timers, page, client, tracker, el: (name) => ({ name }) };
}

test("importing the module in Node touches no DOM; constructing without an observer says what is missing", () => {
  assert.equal(typeof globalThis.IntersectionObserver, "undefined");
  assert.throws(
    () => new ImpressionTracker(recordingClient()),
    /IntersectionObserver: this environment has none/,
  );
});

test("the observer watches the threshold and leaving the view", () => {
  const { io } = setup({ threshold: 0.5, root: null });
  assert.deepEqual(io.instances[0].options.threshold, [0, 0.5]);
});

test("an impression counts after minVisibleMs in view and is sent flushMs later", () => {
  const { io, timers, client, tracker, el } = setup({ minVisibleMs: 1000, flushMs: 2000 });
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 0.6);
  timers.advance(1000);
  assert.deepEqual(client.batches, []);
  timers.advance(1999);
  assert.deepEqual(client.batches, []);
  timers.advance(1);
  assert.deepEqual(client.batches, [["rid-1"]]);
});

test("less than the threshold in view never counts", () => {
  const { io, timers, client, tracker, el } = setup({ threshold: 0.5 });
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 0.3);
  timers.advance(10_000);
  assert.deepEqual(client.batches, []);
});

test("a rounded ratio just under the threshold counts as reaching it", () => {
  const { io, timers, client, tracker, el } = setup({ threshold: 0.5 });
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 0.4999);
  timers.advance(3000);
  assert.deepEqual(client.batches, [["rid-1"]]);
});

test("scrolling away before minVisibleMs resets the count", () => {
  const { io, timers, client, tracker, el } = setup();
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 1);
  timers.advance(600);
  io.show(card, 0);
  timers.advance(600);
  io.show(card, 1);
  timers.advance(600);
  timers.advance(2000);
  assert.deepEqual(
    client.batches,
    [],
    "two 600 ms visits do not add up: the count restarted at 1200 ms",
  );
  timers.advance(400);
  assert.deepEqual(client.batches, [["rid-1"]]);
});

test("each result id is reported once, however often it is seen or observed", () => {
  const { io, timers, client, tracker, el } = setup();
  const card = el("card");
  const twin = el("twin"); // the same item shown twice on the page
  tracker.observe(card, "rid-1");
  tracker.observe(twin, "rid-1");
  io.show(card, 1);
  io.show(twin, 1);
  timers.advance(3000);
  tracker.observe(card, "rid-1");
  io.show(card, 0);
  io.show(card, 1);
  timers.advance(10_000);
  assert.deepEqual(client.batches, [["rid-1"]]);
});

test("impressions seen within flushMs of each other go out in one batch", () => {
  const { io, timers, client, tracker, el } = setup();
  const cards = ["a", "b", "c"].map(el);
  cards.forEach((card, i) => tracker.observe(card, `rid-${i}`));
  io.show(cards[0], 1);
  timers.advance(500);
  io.show(cards[1], 1);
  io.show(cards[2], 1);
  timers.advance(5000);
  assert.deepEqual(client.batches, [["rid-0", "rid-1", "rid-2"]]);
});

test("time in view while the tab is hidden does not count", () => {
  const { io, timers, page, client, tracker, el } = setup();
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 1);
  timers.advance(800);
  page.setVisibility("hidden");
  timers.advance(5000);
  assert.deepEqual(client.batches, []);
  page.setVisibility("visible");
  timers.advance(999);
  assert.equal(client.batches.length, 0);
  timers.advance(1 + 2000);
  assert.deepEqual(client.batches, [["rid-1"]]);
});

test("hiding the page sends what is queued at once", () => {
  const { io, timers, page, client, tracker, el } = setup();
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 1);
  timers.advance(1000);
  page.setVisibility("hidden");
  assert.deepEqual(client.batches, [["rid-1"]]);
  timers.advance(5000);
  assert.equal(client.batches.length, 1, "the scheduled flush was cancelled");
});

test("pagehide sends what is queued at once", () => {
  const { io, timers, page, client, tracker, el } = setup();
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 1);
  timers.advance(1000);
  page.pagehide();
  assert.deepEqual(client.batches, [["rid-1"]]);
});

test("unobserve stops the count for that element", () => {
  const { io, timers, client, tracker, el } = setup();
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 1);
  timers.advance(500);
  tracker.unobserve(card);
  timers.advance(5000);
  assert.deepEqual(client.batches, []);
});

test("disconnect flushes the queue, stops watching and removes its page listeners", async () => {
  const { io, timers, page, client, tracker, el } = setup();
  const seen = el("seen");
  const glimpsed = el("glimpsed");
  tracker.observe(seen, "rid-1");
  tracker.observe(glimpsed, "rid-2");
  io.show(seen, 1);
  timers.advance(1000);
  io.show(glimpsed, 1);
  timers.advance(300);
  await tracker.disconnect();
  assert.deepEqual(client.batches, [["rid-1"]], "a 300 ms glimpse is not an impression");
  assert.equal(io.instances[0].targets.size, 0);
  assert.equal(page.listenerCount(), 0);
  assert.equal(timers.pending, 0);
  assert.throws(() => tracker.observe(seen, "rid-3"), /disconnected/);
});

test("a batch that cannot be sent goes to onError", async () => {
  const errors = [];
  const { io, timers, tracker, el } = setup({ onError: (e) => errors.push(e) }, { fail: true });
  const card = el("card");
  tracker.observe(card, "rid-1");
  io.show(card, 1);
  timers.advance(1000);
  await tracker.flush();
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /network down/);
});

test("bad options fail at once, naming the option", () => {
  const io = fakeIntersectionObserver();
  const client = recordingClient();
  const make = (options) =>
    new ImpressionTracker(client, { IntersectionObserver: io.IntersectionObserver, ...options });
  assert.throws(() => make({ threshold: 2 }), /threshold: expected a number in \[0, 1\]/);
  assert.throws(() => make({ minVisibleMs: -1 }), /minVisibleMs/);
  assert.throws(() => new ImpressionTracker({}), /client: expected a BlendserveClient/);
  assert.throws(() => make({}).observe({}, ""), /resultId/);
});

test("with a real client, pagehide posts the batch to /v1/feedback with keepalive", async (t) => {
  const api = await startFakeApi();
  t.after(() => api.close());
  const { fetch, calls } = recordingFetch();
  const client = new BlendserveClient({ baseUrl: api.url, apiKey: INFER_KEY, fetch });
  const io = fakeIntersectionObserver();
  const timers = fakeTimers();
  const page = fakePage();
  const tracker = new ImpressionTracker(client, {
    IntersectionObserver: io.IntersectionObserver,
    document: page.document,
    window: page.window,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
  });
  const cards = [{}, {}];
  cards.forEach((card, i) => {
    tracker.observe(card, `rid-${i}`);
    io.show(card, 1);
  });
  timers.advance(1000);
  page.pagehide();
  assert.equal(calls.length, 1, "the request started during pagehide");
  assert.equal(calls[0].init.keepalive, true);
  await tracker.disconnect();
  await waitFor(() => api.stored.size === 2);
  const events = api.requests.at(-1).body.events;
  assert.deepEqual(
    events.map((e) => [e.result_id, e.event]),
    [
      ["rid-0", "impression"],
      ["rid-1", "impression"],
    ]
  );
});
