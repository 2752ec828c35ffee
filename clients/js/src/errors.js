/**
 * The errors every client call may throw. One root class; each HTTP status class
 * has its own subclass, so callers catch what they can act on:
 *
 *     BlendserveError            (status, code, field, message, retryAfterS, body)
 *     ├── Unauthorized           401: no key, or an unknown one
 *     ├── Forbidden              403: the key lacks the route's scope
 *     ├── NotFound               404: unknown use case, model or experiment
 *     ├── InvalidRequest         other 4xx (400, 413, 422...): `field` names the culprit
 *     ├── RateLimited            429: over the key's rate (retried first)
 *     ├── Unavailable            503: overloaded or every source failed (retried first)
 *     ├── ServerError            other 5xx
 *     └── NetworkError           no HTTP answer at all (status 0; retried first)
 *         └── RequestTimeout     no answer within `timeoutMs`
 *
 * @module
 */

/**
 * @typedef {object} ErrorDetails
 * @property {number} [status] HTTP status; 0 when no answer came.
 * @property {string} [code] The API's machine-readable code (`invalid_request`...).
 * @property {string | null} [field] The request field at fault, when one is.
 * @property {number | null} [retryAfterS] The server's `Retry-After`, in seconds.
 * @property {unknown} [body] The parsed error body, as the server sent it.
 * @property {unknown} [cause] The underlying error (a network failure...).
 */

/** The root of every error the client throws. */
export class BlendserveError extends Error {
  /**
   * @param {string} message What failed, and where.
   * @param {ErrorDetails} [details]
   */
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    /** HTTP status; 0 when no answer came. */
    this.status = details.status ?? 0;
    /** The API's machine-readable code, e.g. `invalid_request`, `rate_limited`. */
    this.code = details.code ?? "error";
    /** The request field at fault (`k`, `events.3.result_id`), or null. */
    this.field = details.field ?? null;
    /** Seconds the server asked to wait (`Retry-After`), or null. */
    this.retryAfterS = details.retryAfterS ?? null;
    /** The parsed error body, as sent. */
    this.body = details.body ?? null;
  }
}

/** 401: no API key was sent, or the server does not know it. */
export class Unauthorized extends BlendserveError {}
/** 403: the key is valid but lacks the route's scope (`infer`, `admin`). */
export class Forbidden extends BlendserveError {}
/** 404: an unknown use case, model or experiment (`field` says which kind). */
export class NotFound extends BlendserveError {}
/** Any other 4xx: a bad body (422 naming `field`), too large (413), not JSON (400). */
export class InvalidRequest extends BlendserveError {}
/** 429: the key is over its rate limit; `retryAfterS` says for how long. */
export class RateLimited extends BlendserveError {}
/** 503: the service is overloaded or cannot answer now; `retryAfterS` says when to retry. */
export class Unavailable extends BlendserveError {}
/** Any other 5xx. */
export class ServerError extends BlendserveError {}
/** No HTTP answer: the connection failed (DNS, refused, reset, CORS refused). */
export class NetworkError extends BlendserveError {}
/** No answer within the client's `timeoutMs`; the request was aborted. */
export class RequestTimeout extends NetworkError {}

/**
 * The error class for an HTTP status.
 * @param {number} status
 * @returns {typeof BlendserveError}
 */
function classFor(status) {
  switch (status) {
    case 401:
      return Unauthorized;
    case 403:
      return Forbidden;
    case 404:
      return NotFound;
    case 429:
      return RateLimited;
    case 503:
      return Unavailable;
    default:
      return status >= 500 ? ServerError : InvalidRequest;
  }
}

/**
 * The typed error for a non-2xx answer, from its `{"error": {code, message, field}}`
 * body (or whatever a proxy in front sent instead).
 * @param {number} status
 * @param {unknown} body The parsed JSON body, or the raw text when it was not JSON.
 * @param {number | null} retryAfterS
 * @param {string} what The request, e.g. `POST /v1/recommend/home`, for the message.
 * @returns {BlendserveError}
 */
export function errorFor(status, body, retryAfterS, what) {
  const detail =
    body && typeof body === "object" && "error" in body
      ? /** @type {{error: unknown}} */ (body).error
      : null;
  let code = `http_${status}`;
  let message = typeof body === "string" && body.trim() ? body.trim().slice(0, 200) : "";
  let field = null;
  if (detail && typeof detail === "object") {
    const d = /** @type {Record<string, unknown>} */ (detail);
    if (typeof d.code === "string") code = d.code;
    if (typeof d.message === "string") message = d.message;
    if (typeof d.field === "string") field = d.field;
  } else if (typeof detail === "string") {
    message = detail; // the Open Inference Protocol's `{"error": "..."}`
  }
  const Class = classFor(status);
  return new Class(`${what}: ${status} ${message || "no details"}`.trim(), {
    status,
    code,
    field,
    retryAfterS,
    body,
  });
}
