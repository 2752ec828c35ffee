// BlendserveClient against a fake API on 127.0.0.1: answers, errors, retries, timeouts.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  BlendserveClient,
  BlendserveError,
  Forbidden,
  InvalidRequest,
  NetworkError,
  NotFound,
  RateLimited,
  RequestTimeout,
  ServerError,
  Unauthorized,
  Unavailable,
} from "../src/index.js";
import { ADMIN_KEY, INFER_KEY, closedPort, fakeSleep, startFakeApi } from "./helpers.js";

let api;
before(async () => {
  api = await startFakeApi();
});
after(() => api.close());

function client(options = {}) {
  return new BlendserveClient({ baseUrl: api.url, apiKey: INFER_KEY, ...options });
}

test("recommend posts snake_case fields with the key and returns the answer", async () => {
  const answer = await client().recommend("home", {
    userId: "u42",
    k: 3,
    context: { page: "home" },
  });
  assert.equal(answer.items.length, 3);
  assert.equal(answer.items[0].result_id, "rid-1");
  assert.deepEqual(answer.model_versions, { mf: "1" });
  const sent = api.requests.at(-1);
  assert.equal(sent.path, "/v1/recommend/home");
  assert.equal(sent.headers.authorization, `Bearer ${INFER_KEY}`);
  assert.equal(sent.headers["content-type"], "application/json");
  assert.deepEqual(sent.body, { user_id: "u42", k: 3, context: { page: "home" } });
});

test("recommend sends filters and boosts as given", async () => {
  const filters = [{ attribute: "price", max: 50 }];
  const boosts = [{ attribute: "brand", equals: "acme", multiply: 1.5 }];
  await client().recommend("home", { userId: "u7", filters, boosts });
  assert.deepEqual(api.requests.at(-1).body, { user_id: "u7", filters, boosts });
});

test("recommend leaves out options that were not given", async () => {
  await client().recommend("home", { userId: "u1" });
  assert.deepEqual(api.requests.at(-1).body, { user_id: "u1" });
});

test("an integer userId is sent as a JSON number", async () => {
  await client().recommend("home", { userId: 42 });
  assert.deepEqual(api.requests.at(-1).body, { user_id: 42 });
});

test("a trailing slash on baseUrl does not double the slash", async () => {
  await new BlendserveClient({ baseUrl: `${api.url}/`, apiKey: INFER_KEY }).recommend("home", {
    userId: "u1",
  });
  assert.equal(api.requests.at(-1).path, "/v1/recommend/home");
});

test("without apiKey no Authorization header is sent (for a backend that adds it)", async () => {
  await assert.rejects(
    new BlendserveClient({ baseUrl: api.url }).recommend("home", { userId: "u1" }),
    Unauthorized,
  );
  assert.equal(api.requests.at(-1).headers.authorization, undefined);
});

test("bad options fail at once, naming the option", () => {
  assert.throws(
    () => new BlendserveClient({ baseUrl: "127.0.0.1:8000" }),
    /baseUrl: expected an http\(s\) URL/,
  );
  assert.throws(() => client({ timeoutMs: 0 }), /timeoutMs: expected a number >= 1/);
  assert.throws(() => client({ retries: -1 }), /retries/);
  return assert.rejects(
    client().recommend("home", { userId: 1.5 }),
    /userId: expected a non-empty string or an integer/,
  );
});

test("a wrong key is Unauthorized, not retried", async () => {
  const before_ = api.requests.length;
  const error = await client({ apiKey: "wrong" })
    .recommend("home", { userId: "u1" })
    .catch((e) => e);
  assert.ok(error instanceof Unauthorized);
  assert.ok(error instanceof BlendserveError);
  assert.equal(error.status, 401);
  assert.equal(error.code, "unauthenticated");
  assert.equal(api.requests.length - before_, 1);
});

test("a key without the route's scope is Forbidden", async () => {
  await assert.rejects(
    client().request("GET", "/v1/experiments"),
    (e) => e instanceof Forbidden && e.status === 403,
  );
  assert.deepEqual(await client({ apiKey: ADMIN_KEY }).request("GET", "/v1/experiments"), {
    experiments: ["discover.ab"],
  });
});

test("an unknown use case is NotFound with its field", async () => {
  const error = await client()
    .recommend("nope", { userId: "u1" })
    .catch((e) => e);
  assert.ok(error instanceof NotFound);
  assert.equal(error.field, "use_case");
  assert.match(error.message, /POST \/v1\/recommend\/nope: 404 unknown use case/);
});

test("a 422 is InvalidRequest naming the field, and is not retried", async () => {
  const before_ = api.requests.length;
  const error = await client()
    .recommend("home", { userId: "u1", k: 0 })
    .catch((e) => e);
  assert.ok(error instanceof InvalidRequest);
  assert.equal(error.status, 422);
  assert.equal(error.code, "invalid_request");
  assert.equal(error.field, "k");
  assert.equal(error.body.error.field, "k");
  assert.equal(api.requests.length - before_, 1);
});

test("other 5xx are ServerError, with a proxy's non-JSON body in the message", async () => {
  api.script("/v1/recommend/home", { status: 502, body: "Bad Gateway" });
  const error = await client()
    .recommend("home", { userId: "u1" })
    .catch((e) => e);
  assert.ok(error instanceof ServerError);
  assert.equal(error.status, 502);
  assert.equal(error.code, "http_502");
  assert.match(error.message, /502 Bad Gateway/);
});

test("a 503 with Retry-After is retried after it, then answers", async () => {
  const { sleep, waits } = fakeSleep();
  api.script("/v1/recommend/home", { status: 503, retryAfter: "0" });
  const answer = await client({ sleep, backoffMs: 50 }).recommend("home", { userId: "u1", k: 1 });
  assert.equal(answer.items.length, 1);
  assert.equal(waits.length, 1);
  assert.ok(
    waits[0] >= 0 && waits[0] < 50,
    `Retry-After 0 plus jitter under backoffMs, got ${waits[0]}`,
  );
});

test("Retry-After is honoured in seconds", async () => {
  const { sleep, waits } = fakeSleep();
  api.script("/v1/recommend/home", { status: 429, retryAfter: "2" });
  await client({ sleep, backoffMs: 10 }).recommend("home", { userId: "u1" });
  assert.ok(waits[0] >= 2000 && waits[0] < 2010, `got ${waits[0]}`);
});

test("a 429 is retried; when retries run out it is RateLimited with retryAfterS", async () => {
  const { sleep, waits } = fakeSleep();
  api.script("/v1/recommend/home", ...Array(3).fill({ status: 429, retryAfter: "0" }));
  const error = await client({ sleep, retries: 2 })
    .recommend("home", { userId: "u1" })
    .catch((e) => e);
  assert.ok(error instanceof RateLimited);
  assert.equal(error.retryAfterS, 0);
  assert.equal(waits.length, 2);
});

test("without Retry-After the backoff grows exponentially, with jitter", async () => {
  const { sleep, waits } = fakeSleep();
  api.script("/v1/recommend/home", ...Array(3).fill({ status: 503 }));
  const answer = await client({ sleep, retries: 3, backoffMs: 100 }).recommend("home", {
    userId: "u1",
  });
  assert.equal(answer.use_case, "home", "the fourth attempt answers");
  assert.equal(waits.length, 3);
  [100, 200, 400].forEach((ceiling, i) => {
    assert.ok(
      waits[i] >= ceiling / 2 && waits[i] <= ceiling,
      `retry ${i}: ${waits[i]} in [${ceiling / 2}, ${ceiling}]`,
    );
  });
});

test("a Retry-After longer than maxRetryDelayMs fails at once as Unavailable", async () => {
  const { sleep, waits } = fakeSleep();
  api.script("/v1/recommend/home", { status: 503, retryAfter: "30" });
  const error = await client({ sleep, maxRetryDelayMs: 5000 })
    .recommend("home", { userId: "u1" })
    .catch((e) => e);
  assert.ok(error instanceof Unavailable);
  assert.equal(error.retryAfterS, 30);
  assert.deepEqual(waits, []);
});

test("retries: 0 sends once", async () => {
  api.script("/v1/recommend/home", { status: 503, retryAfter: "0" });
  await assert.rejects(client({ retries: 0 }).recommend("home", { userId: "u1" }), Unavailable);
});

test("a refused connection is a NetworkError, retried", async () => {
  const { sleep, waits } = fakeSleep();
  const dead = new BlendserveClient({
    baseUrl: `http://127.0.0.1:${await closedPort()}`,
    sleep,
    retries: 2,
  });
  const error = await dead.recommend("home", { userId: "u1" }).catch((e) => e);
  assert.ok(error instanceof NetworkError);
  assert.equal(error.status, 0);
  assert.equal(error.code, "network_error");
  assert.equal(waits.length, 2);
});

test("no answer within timeoutMs is a RequestTimeout", async () => {
  api.script("/v1/recommend/home", { delayMs: 500 });
  const started = Date.now();
  const error = await client({ timeoutMs: 50, retries: 0 })
    .recommend("home", { userId: "u1" })
    .catch((e) => e);
  assert.ok(error instanceof RequestTimeout);
  assert.ok(error instanceof NetworkError);
  assert.equal(error.code, "timeout");
  assert.ok(Date.now() - started < 400, "gave up at the timeout, not at the answer");
});

test("a timed-out attempt is retried and the next one answers", async () => {
  const { sleep, waits } = fakeSleep();
  api.script("/v1/recommend/home", { delayMs: 800 });
  const answer = await client({ timeoutMs: 300, sleep }).recommend("home", { userId: "u1", k: 2 });
  assert.equal(answer.items.length, 2);
  assert.equal(waits.length, 1);
});

test("a per-call timeoutMs overrides the client's", async () => {
  api.script("/v1/recommend/home", { delayMs: 300 });
  await assert.rejects(
    client({ timeoutMs: 5000 }).recommend("home", { userId: "u1", timeoutMs: 30, retries: 0 }),
    RequestTimeout,
  );
});

test("the caller's abort signal ends the call with its reason, without retrying", async () => {
  const before_ = api.requests.length;
  api.script("/v1/recommend/home", { delayMs: 300 });
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("user left")), 30);
  await assert.rejects(
    client().recommend("home", { userId: "u1", signal: controller.signal }),
    /user left/,
  );
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(api.requests.length - before_, 1);
});

test("the platform's fetch is called as a plain function, never as the client's method", async () => {
  let receiver = "unset";
  function strictFetch(url, init) {
    receiver = this; // a browser's fetch throws "Illegal invocation" unless this is undefined or window
    return Promise.resolve({ ok: true, status: 200, headers: { get: () => null }, text: async () => "{}" });
  }
  const client = new BlendserveClient({ baseUrl: "http://127.0.0.1:9", fetch: strictFetch });
  await client.request("GET", "/healthz");
  assert.equal(receiver, undefined);
});
