// Against a running blendserve (e.g. `make run`): only when BLENDSERVE_URL and
// BLENDSERVE_API_KEY are set, e.g.
//   BLENDSERVE_URL=http://127.0.0.1:8000 BLENDSERVE_API_KEY=$(cat ../../.blendserve/api_key) npm test
import assert from "node:assert/strict";
import { test } from "node:test";

import { BlendserveClient, Forbidden, Unauthorized } from "../src/index.js";

const baseUrl = process.env.BLENDSERVE_URL;
const apiKey = process.env.BLENDSERVE_API_KEY;
const skip =
  baseUrl && apiKey
    ? false
    : "set BLENDSERVE_URL and BLENDSERVE_API_KEY to run against a live service";

test(
  "live: recommend on home, then an impression and a click of its first item",
  { skip },
  async () => {
    const client = new BlendserveClient({ baseUrl, apiKey, timeoutMs: 10_000 });
    const answer = await client.recommend("home", { userId: "js-client-live", k: 3 });
    assert.equal(answer.use_case, "home");
    assert.ok(answer.items.length > 0 && answer.items.length <= 3);
    assert.equal(typeof answer.degraded, "boolean");
    assert.equal(typeof answer.model_versions, "object");
    const first = answer.items[0];
    assert.match(first.result_id, /^[\w-]+\.[\w-]+$/);

    const seen = await client.impression([first.result_id], { beacon: false });
    assert.deepEqual(seen, { accepted: 1, duplicates: 0, rejected: [] });
    const clicked = await client.click(first.result_id);
    assert.deepEqual(clicked, { accepted: 1, duplicates: 0, rejected: [] });
  },
);

test("live: resent events with the same event_id count as duplicates", { skip }, async () => {
  const client = new BlendserveClient({ baseUrl, apiKey, timeoutMs: 10_000 });
  const { items } = await client.recommend("home", { userId: "js-client-live", k: 1 });
  const events = [
    { result_id: items[0].result_id, event: "impression", event_id: `js-live-${Date.now()}` },
  ];
  assert.equal((await client.feedback(events)).accepted, 1);
  assert.deepEqual(await client.feedback(events), { accepted: 0, duplicates: 1, rejected: [] });
});

test("live: a forged result id comes back in rejected", { skip }, async () => {
  const client = new BlendserveClient({ baseUrl, apiKey, timeoutMs: 10_000 });
  const result = await client.feedback([{ result_id: "eyJmb3JnZWQiOjF9.AAAA", event: "click" }]);
  assert.equal(result.accepted, 0);
  assert.equal(result.rejected[0].field, "events.0.result_id");
});

test("live: GET /v1/experiments answers", { skip }, async (t) => {
  const client = new BlendserveClient({ baseUrl, apiKey, timeoutMs: 10_000 });
  try {
    const answer = await client.request("GET", "/v1/experiments");
    assert.ok(Array.isArray(answer.experiments));
  } catch (error) {
    if (!(error instanceof Forbidden)) throw error;
    t.skip("BLENDSERVE_API_KEY lacks the admin scope");
  }
});

test("live: a wrong key is Unauthorized", { skip }, async () => {
  const client = new BlendserveClient({ baseUrl, apiKey: "bsk_not_a_real_key", timeoutMs: 10_000 });
  await assert.rejects(client.recommend("home", { userId: "js-client-live" }), (error) => {
    assert.ok(error instanceof Unauthorized);
    assert.equal(error.status, 401);
    assert.equal(error.code, "unauthenticated");
    return true;
  });
});
