/**
 * Feedback events on their way out: an `event_id` for each, so that a retried or
 * resent event is stored once, and batches sized for one request, a keepalive
 * request or a beacon.
 *
 * @module
 */

/** @typedef {import("./index.js").FeedbackEvent} FeedbackEvent */

/** Most events the server takes in one feedback request. */
export const MAX_EVENTS_PER_REQUEST = 1000;

/**
 * Largest body of one keepalive request or beacon. Browsers refuse a keepalive fetch
 * or a beacon once the bodies in flight pass 64 KiB; this leaves room for others.
 */
export const MAX_KEEPALIVE_BYTES = 60_000;

/**
 * Copies of the events, each with an `event_id` (kept when given).
 * @param {FeedbackEvent | FeedbackEvent[]} events
 * @returns {FeedbackEvent[]}
 */
export function withEventIds(events) {
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) throw new TypeError("events: expected at least one event");
  return list.map((event, index) => {
    if (!event || typeof event !== "object" || typeof event.result_id !== "string") {
      throw new TypeError(`events[${index}]: expected {result_id, event, ...}`);
    }
    const copy = { ...event, event_id: event.event_id ?? newEventId() };
    if (copy.ts instanceof Date) copy.ts = copy.ts.toISOString();
    return copy;
  });
}

/**
 * Batches that fit one request: at most `MAX_EVENTS_PER_REQUEST` events, and at most
 * `MAX_KEEPALIVE_BYTES` of JSON when sent with keepalive or as a beacon.
 * @param {FeedbackEvent[]} events
 * @param {boolean} small
 * @returns {Array<[number, FeedbackEvent[]]>} `[offset of the first event, events]`
 */
export function chunked(events, small) {
  const chunks = /** @type {Array<[number, FeedbackEvent[]]>} */ ([]);
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    const size = new TextEncoder().encode(JSON.stringify(events[i])).length + 1;
    const full =
      i - start >= MAX_EVENTS_PER_REQUEST ||
      (small && i > start && bytes + size > MAX_KEEPALIVE_BYTES);
    if (full) {
      chunks.push([start, events.slice(start, i)]);
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  chunks.push([start, events.slice(start)]);
  return chunks;
}

/**
 * A random UUID: `crypto.randomUUID` where there is one (secure contexts, Node 19+),
 * else built from `crypto.getRandomValues`, else (Node 18) from `Math.random`.
 * @returns {string}
 */
export function newEventId() {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof c?.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** @param {string} id */
export function checkResultId(id) {
  if (typeof id !== "string" || id === "") {
    throw new TypeError(`resultId: expected the item's result_id, got ${JSON.stringify(id)}`);
  }
  return id;
}
