/**
 * blendserve's JavaScript client, for browsers and Node 18+: recommendations,
 * feedback (clicks, impressions, conversions) with retries, timeouts and typed
 * errors, and an `ImpressionTracker` that reports what users actually saw.
 * No dependencies; declarations in `index.d.ts`.
 *
 * @module
 */

export { BlendserveClient } from "./client.js";
export { MAX_EVENTS_PER_REQUEST, MAX_KEEPALIVE_BYTES } from "./events.js";
export {
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
} from "./errors.js";
export { ImpressionTracker } from "./tracker.js";
