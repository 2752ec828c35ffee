/**
 * `BlendserveClient`: recommendations and feedback over blendserve's HTTP API, with
 * retries (429, 503, network failures; honouring `Retry-After`), per-attempt timeouts
 * and typed errors. Needs only the platform's `fetch`, `AbortController` and `Blob`.
 *
 * @module
 */

import {
  BlendserveError,
  NetworkError,
  RateLimited,
  RequestTimeout,
  Unavailable,
  errorFor,
} from "./errors.js";
import { chunked, checkResultId, withEventIds } from "./events.js";

/**
 * @typedef {import("./index.js").ClientOptions} ClientOptions
 * @typedef {import("./index.js").CallOptions} CallOptions
 * @typedef {import("./index.js").FeedbackEvent} FeedbackEvent
 * @typedef {import("./index.js").FeedbackResult} FeedbackResult
 * @typedef {import("./index.js").SendResult} SendResult
 * @typedef {{ok: true, status: number, body: unknown}
 *   | {ok: false, status: number, body: unknown, error: BlendserveError}} Answer
 *   An attempt's outcome: the parsed answer, or the error it maps to.
 */

/** Talks to one blendserve deployment. Safe to share across a page or process. */
export class BlendserveClient {
  /** @param {ClientOptions} options */
  constructor(options) {
    const {
      baseUrl,
      apiKey,
      timeoutMs = 3000,
      retries = 2,
      backoffMs = 200,
      maxRetryDelayMs = 10_000,
      beaconUrl,
      fetch: fetchImpl = globalThis.fetch,
      sleep = defaultSleep,
    } = options ?? /** @type {ClientOptions} */ ({});
    if (typeof baseUrl !== "string" || !/^https?:\/\//.test(baseUrl)) {
      throw new TypeError(`baseUrl: expected an http(s) URL, got ${JSON.stringify(baseUrl)}`);
    }
    if (apiKey !== undefined && (typeof apiKey !== "string" || apiKey === "")) {
      throw new TypeError("apiKey: expected a non-empty string, or leave it out");
    }
    checkNumber("timeoutMs", timeoutMs, 1);
    checkNumber("retries", retries, 0);
    checkNumber("backoffMs", backoffMs, 0);
    checkNumber("maxRetryDelayMs", maxRetryDelayMs, 0);
    if (typeof fetchImpl !== "function") {
      throw new TypeError("fetch: none available; pass `fetch` (Node 18+ and browsers have one)");
    }
    /** The API's root, without a trailing slash. */
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    /** Where beacons go: an endpoint of your own site that adds the key, or null. */
    this.beaconUrl = beaconUrl ?? null;
    this.timeoutMs = timeoutMs;
    this.retries = retries;
    this.backoffMs = backoffMs;
    this.maxRetryDelayMs = maxRetryDelayMs;
    /** @private */
    this._apiKey = apiKey ?? null;
    /** @private */
    // A browser's fetch must not be called as a method of another object ("Illegal
    // invocation"): keep it as a plain function.
    this._fetch = (url, init) => fetchImpl(url, init);
    /** @private */
    this._sleep = sleep;
  }

  /**
   * Top-k items for a user from one use case (`POST /v1/recommend/{useCase}`).
   * @param {string} useCase
   * @param {import("./index.js").RecommendOptions} options
   * @returns {Promise<import("./index.js").Recommendations>}
   */
  async recommend(useCase, options) {
    const { userId, k, context, exclude, filters, boosts, ...call } = options ?? {};
    if (typeof useCase !== "string" || useCase === "") {
      throw new TypeError("useCase: expected a non-empty string");
    }
    if (!((typeof userId === "string" && userId !== "") || Number.isSafeInteger(userId))) {
      throw new TypeError("userId: expected a non-empty string or an integer");
    }
    const body = { user_id: userId, k, context, exclude, filters, boosts };
    const path = `/v1/recommend/${encodeURIComponent(useCase)}`;
    return /** @type {any} */ (await this.request("POST", path, { ...call, body }));
  }

  /**
   * Send feedback events (`POST /v1/feedback`), in as many requests as their number
   * and size need. Each event without an `event_id` gets one here, so a retried or
   * resent event is stored once. Entries the server refuses (a stale or forged
   * `result_id`) come back in `rejected`, with `index` into `events`; the others are
   * stored all the same.
   * @param {FeedbackEvent | FeedbackEvent[]} events
   * @param {import("./index.js").FeedbackOptions} [options]
   * @returns {Promise<FeedbackResult>}
   */
  async feedback(events, options = {}) {
    const { keepalive = false, ...call } = options;
    const prepared = withEventIds(events);
    const total = { accepted: 0, duplicates: 0, rejected: /** @type {any[]} */ ([]) };
    for (const [offset, chunk] of chunked(prepared, keepalive)) {
      const answer = await this._sendFeedback(chunk, { ...call, keepalive });
      total.accepted += answer.accepted ?? 0;
      total.duplicates += answer.duplicates ?? 0;
      for (const r of answer.rejected ?? []) {
        total.rejected.push({
          ...r,
          index: r.index + offset,
          field: String(r.field).replace(/^events\.(\d+)/, (_, i) => `events.${+i + offset}`),
        });
      }
    }
    return total;
  }

  /**
   * Report that the user clicked a served item. Sent with `keepalive`, so it is
   * delivered even when the click navigates away; through `navigator.sendBeacon` to
   * `beaconUrl` instead when the client has one and `beacon` is true.
   * @param {string} resultId The item's `result_id`.
   * @param {import("./index.js").SendOptions} [options]
   * @returns {Promise<SendResult>}
   */
  async click(resultId, options) {
    /** @type {FeedbackEvent} */
    const event = { result_id: checkResultId(resultId), event: "click" };
    return this._track([event], options);
  }

  /**
   * Report that served items were seen (prefer `ImpressionTracker`, which decides
   * when an item counts as seen).
   * @param {string | string[]} resultIds
   * @param {import("./index.js").SendOptions} [options]
   * @returns {Promise<SendResult>}
   */
  async impression(resultIds, options) {
    const ids = Array.isArray(resultIds) ? resultIds : [resultIds];
    const events = ids.map(
      (id) => /** @type {FeedbackEvent} */ ({ result_id: checkResultId(id), event: "impression" }),
    );
    return this._track(events, options);
  }

  /**
   * Report a conversion (a purchase, a subscription...) of a served item.
   * @param {string} resultId
   * @param {number} [value] E.g. the amount.
   * @param {import("./index.js").SendOptions} [options]
   * @returns {Promise<SendResult>}
   */
  async conversion(resultId, value, options) {
    if (value !== undefined && !Number.isFinite(value)) {
      throw new TypeError(`value: expected a finite number, got ${value}`);
    }
    /** @type {FeedbackEvent} */
    const event = { result_id: checkResultId(resultId), event: "conversion", value };
    return this._track([event], options);
  }

  /**
   * Any API route, with the client's key, retries, timeout and errors: e.g.
   * `request("GET", "/v1/experiments")`. Resolves with the parsed JSON answer.
   * @param {string} method
   * @param {string} path Starting with `/`.
   * @param {import("./index.js").RequestOptions} [options]
   * @returns {Promise<unknown>}
   */
  async request(method, path, options = {}) {
    const { body, ...call } = options;
    const answer = await this._call(method, path, body, call);
    if (!answer.ok) throw answer.error;
    return answer.body;
  }

  /**
   * @private
   * @param {FeedbackEvent[]} events
   * @param {import("./index.js").SendOptions} [options]
   * @returns {Promise<SendResult>}
   */
  async _track(events, options = {}) {
    const { beacon = true, ...call } = options;
    const prepared = withEventIds(events);
    const sendBeacon = globalThis.navigator?.sendBeacon;
    if (beacon && this.beaconUrl && typeof sendBeacon === "function") {
      let queued = true;
      for (const [, chunk] of chunked(prepared, true)) {
        const blob = new Blob([JSON.stringify({ events: chunk })], { type: "application/json" });
        queued = sendBeacon.call(globalThis.navigator, this.beaconUrl, blob) && queued;
      }
      // The browser's beacon queue was full: fall back to a keepalive fetch, with
      // the same event ids, so a beacon that did leave is not counted twice.
      if (queued) return { beacon: true, queued: true };
    }
    return this.feedback(prepared, { ...call, keepalive: true });
  }

  /**
   * @private
   * @param {FeedbackEvent[]} events
   * @param {CallOptions & {keepalive: boolean}} call
   */
  async _sendFeedback(events, call) {
    const answer = await this._call("POST", "/v1/feedback", { events }, call);
    if (answer.ok) return /** @type {any} */ (answer.body);
    const body = /** @type {any} */ (answer.body);
    // A 422 naming refused entries: the others were stored; report, do not throw.
    if (answer.status === 422 && body && Array.isArray(body.rejected)) return body;
    throw answer.error;
  }

  /**
   * One request with retries: on 429 and 503 (after `Retry-After` when the server
   * sent one and the browser lets us read it, else exponential backoff with jitter)
   * and on network failures and timeouts.
   * @private
   * @param {string} method
   * @param {string} path
   * @param {unknown} body
   * @param {CallOptions & {keepalive?: boolean}} call
   * @returns {Promise<Answer>}
   */
  async _call(method, path, body, call) {
    const { timeoutMs = this.timeoutMs, retries = this.retries, signal, keepalive } = call;
    const what = `${method} ${path}`;
    const headers = /** @type {Record<string, string>} */ ({ Accept: "application/json" });
    if (this._apiKey) headers.Authorization = `Bearer ${this._apiKey}`;
    const init = /** @type {RequestInit} */ ({ method, headers });
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body); // once: every attempt sends the same event ids
    }
    if (keepalive) init.keepalive = true;
    for (let attempt = 0; ; attempt++) {
      const answer = await this._attempt(this.baseUrl + path, init, timeoutMs, signal, what);
      const error = answer.ok ? null : answer.error;
      if (!error || attempt >= retries || !isRetryable(error)) return answer;
      const delayMs = this._retryDelayMs(error, attempt);
      if (delayMs === null) return answer;
      await this._sleep(delayMs);
      signal?.throwIfAborted?.();
    }
  }

  /**
   * How long to wait before the next attempt, or null to give up now (the server
   * asked for a longer wait than `maxRetryDelayMs`).
   * @private
   * @param {BlendserveError} error
   * @param {number} attempt 0 for the first retry.
   * @returns {number | null}
   */
  _retryDelayMs(error, attempt) {
    const jitter = Math.random() * this.backoffMs;
    if (error.retryAfterS !== null) {
      const askedMs = error.retryAfterS * 1000;
      return askedMs > this.maxRetryDelayMs ? null : askedMs + jitter;
    }
    const ceiling = Math.min(this.maxRetryDelayMs, this.backoffMs * 2 ** attempt);
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  /**
   * @private
   * @param {string} url
   * @param {RequestInit} init
   * @param {number} timeoutMs
   * @param {import("./index.js").AbortSignalLike | undefined} signal
   * @param {string} what
   * @returns {Promise<Answer>}
   */
  async _attempt(url, init, timeoutMs, signal, what) {
    signal?.throwIfAborted?.();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const response = await this._fetch(url, { ...init, signal: controller.signal });
      const text = await response.text();
      const parsed = parseBody(text);
      if (response.ok)
        return { ok: /** @type {const} */ (true), status: response.status, body: parsed };
      const retryAfterS = parseRetryAfter(response.headers.get("Retry-After"));
      const error = errorFor(response.status, parsed, retryAfterS, what);
      return { ok: /** @type {const} */ (false), status: response.status, body: parsed, error };
    } catch (exc) {
      if (signal?.aborted) throw signal.reason ?? exc; // the caller gave up: no retry
      const error = timedOut
        ? new RequestTimeout(`${what}: no answer within ${timeoutMs} ms`, { code: "timeout" })
        : new NetworkError(`${what}: ${describe(exc)}`, { code: "network_error", cause: exc });
      return { ok: /** @type {const} */ (false), status: 0, body: null, error };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** @param {BlendserveError} error */
function isRetryable(error) {
  return (
    error instanceof RateLimited || error instanceof Unavailable || error instanceof NetworkError
  );
}

/**
 * Seconds from a `Retry-After` header (seconds or an HTTP date), or null.
 * @param {string | null} value
 * @returns {number | null}
 */
export function parseRetryAfter(value) {
  if (value === null || value.trim() === "") return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** @param {string} text */
function parseBody(text) {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * @param {string} name
 * @param {unknown} value
 * @param {number} min
 */
function checkNumber(name, value, min) {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new TypeError(`${name}: expected a number >= ${min}, got ${JSON.stringify(value)}`);
  }
}

/** @param {unknown} exc */
function describe(exc) {
  if (exc instanceof Error) {
    const cause = /** @type {any} */ (exc).cause;
    return cause?.message ? `${exc.message} (${cause.message})` : exc.message;
  }
  return String(exc);
}

/** @param {number} ms */
function defaultSleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
