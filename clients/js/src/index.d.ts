// Hand-written declarations of src/index.js; keep them in step with the code
// (test/declarations.test.js checks that both export the same names).
// Platform objects are described by the parts the client uses, so these compile
// with or without the DOM library and @types/node; the real ones fit.

/** The part of `AbortSignal` the client uses; any `AbortSignal` fits. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: any;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
  throwIfAborted?(): void;
}

/** The part of a `fetch` answer the client reads; any `Response` fits. */
export interface ResponseLike {
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/** A `fetch`: the global one in browsers and Node 18+, or a wrapper around it. */
export type FetchLike = (url: string, init: any) => Promise<ResponseLike>;

/** Settings of a client; only `baseUrl` is required. */
export interface ClientOptions {
  /** The API's root, e.g. `https://reco.example.com` (no `/v1`). */
  baseUrl: string;
  /**
   * An API key, sent as `Authorization: Bearer <key>`. Leave it out when `baseUrl`
   * is a backend of your own that adds the key. In a browser, use an `infer`-only key
   * with a rate limit: anyone can read it from the page.
   */
  apiKey?: string;
  /** Per attempt, until the whole answer has arrived. Default 3000. */
  timeoutMs?: number;
  /** Extra attempts after a 429, a 503, a network failure or a timeout. Default 2. */
  retries?: number;
  /** Base of the exponential backoff when the server sent no `Retry-After`, and the jitter added to one. Default 200. */
  backoffMs?: number;
  /** Longest wait before a retry; a longer `Retry-After` fails at once instead. Default 10000. */
  maxRetryDelayMs?: number;
  /**
   * An endpoint of your own site that takes `{"events": [...]}` and forwards it to
   * `POST /v1/feedback` with the key. Only with one do `click`, `impression` and
   * `conversion` use `navigator.sendBeacon` (beacons cannot carry a key).
   */
  beaconUrl?: string;
  /** The `fetch` to use. Default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** How to wait between attempts (tests pass a fake). Default `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
}

/** Per-call overrides, and a signal to cancel the call (no retry after it fires). */
export interface CallOptions {
  timeoutMs?: number;
  retries?: number;
  signal?: AbortSignalLike;
}

/** Value types a `context` entry may have. */
export type ContextValue = string | number | boolean | null;

export interface RecommendOptions extends CallOptions {
  /** The end user's id (1 to 256 characters), or an integer id. */
  userId: string | number;
  /** How many items, 1..100 (the server's `max_k`); default 10. */
  k?: number;
  /** Request features (device, page...): at most 32 keys. */
  context?: Record<string, ContextValue>;
  /** Item ids that must not be returned. */
  exclude?: string[];
  /** Keep only items whose declared catalogue attributes pass every rule. */
  filters?: Rule[];
  /** Multiply the scores of items a rule holds for by its `multiply`. */
  boosts?: (Rule & { multiply: number })[];
}

/** A condition on one catalogue attribute: one of equals, in, min/max, max_age_s. */
export interface Rule {
  attribute: string;
  equals?: string | number | boolean;
  in?: (string | number | boolean)[];
  min?: number | string;
  max?: number | string;
  max_age_s?: number;
  negate?: boolean;
}

/** One source's part in an item's score. */
export interface Component {
  source: string;
  model: string;
  version: string;
  /** Blend weight; null for a pinned slot. */
  weight: number | null;
  score: number;
  raw_score: number;
  /** 1-based position a curated slot pinned the item at. */
  slot?: number;
  /** True when the item came from a human-curated list. */
  curated?: boolean;
  /** `rerank` or `stack` when a model re-scored the item. */
  role?: string;
}

/** A recommended item. */
export interface Item {
  item_id: string;
  /** Signed id of this item in this answer: send it back with feedback. */
  result_id: string;
  score: number;
  /** Whether a curated slot placed the item. */
  pinned: boolean;
  /** The interleaving team credited with the item, in an interleaved list. */
  team?: string;
  components: Component[];
}

/** The answer of `recommend`. */
export interface Recommendations {
  request_id: string;
  use_case: string;
  /** In order: the list order is authoritative. */
  items: Item[];
  /** Every model that answered, and its version. */
  model_versions: Record<string, string>;
  /** Experiment node -> this user's arm; absent outside experiments. */
  variant?: Record<string, string>;
  /** True when a source was late or failed and the answer came from the others. */
  degraded: boolean;
}

/** One thing a user did with a served item (the server's field names). */
export interface FeedbackEvent {
  result_id: string;
  event: "impression" | "click" | "add_to_cart" | "conversion" | "purchase" | "dwell";
  /** A purchase's amount; a dwell's seconds (required for `dwell`). */
  value?: number;
  /** Generated when missing, so a resent event is stored once. */
  event_id?: string;
  /** When it happened (a Date, or ISO 8601 with an offset); default: on arrival. */
  ts?: string | Date;
}

/** An event the server refused; the others were stored. */
export interface Rejected {
  /** Position in the `events` passed to `feedback`. */
  index: number;
  /** The field at fault, e.g. `events.3.result_id`. */
  field: string;
  message: string;
}

/** What happened to a feedback call's events. */
export interface FeedbackResult {
  accepted: number;
  duplicates: number;
  rejected: Rejected[];
}

/** Events handed to `navigator.sendBeacon`: the browser sends them later, without an answer. */
export interface BeaconQueued {
  beacon: true;
  queued: true;
}

export type SendResult = FeedbackResult | BeaconQueued;

export interface FeedbackOptions extends CallOptions {
  /** Send with `fetch(..., {keepalive: true})`, which outlives the page. Default false. */
  keepalive?: boolean;
}

export interface SendOptions extends CallOptions {
  /** Use `navigator.sendBeacon` when the client has a `beaconUrl`. Default true. */
  beacon?: boolean;
}

export interface RequestOptions extends CallOptions {
  /** Sent as JSON. */
  body?: unknown;
  keepalive?: boolean;
}

/** Most events the server takes in one feedback request (1000). */
export declare const MAX_EVENTS_PER_REQUEST: number;
/** Largest body the client puts in one keepalive request or beacon (60000 bytes). */
export declare const MAX_KEEPALIVE_BYTES: number;

/** Talks to one blendserve deployment. Safe to share across a page or process. */
export declare class BlendserveClient {
  constructor(options: ClientOptions);
  readonly baseUrl: string;
  readonly beaconUrl: string | null;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly backoffMs: number;
  readonly maxRetryDelayMs: number;
  /** Top-k items for a user from one use case. */
  recommend(useCase: string, options: RecommendOptions): Promise<Recommendations>;
  /** Send events (any number; split into requests as needed). Refused entries come back in `rejected`. */
  feedback(
    events: FeedbackEvent | FeedbackEvent[],
    options?: FeedbackOptions,
  ): Promise<FeedbackResult>;
  /** A click, sent with keepalive (or as a beacon to `beaconUrl`). */
  click(resultId: string, options?: SendOptions): Promise<SendResult>;
  /** Impressions, sent with keepalive (or as a beacon to `beaconUrl`). */
  impression(resultIds: string | string[], options?: SendOptions): Promise<SendResult>;
  /** A conversion, with an optional value, sent with keepalive (or as a beacon to `beaconUrl`). */
  conversion(resultId: string, value?: number, options?: SendOptions): Promise<SendResult>;
  /** Any API route with the client's key, retries, timeout and errors; resolves with the JSON answer. */
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T>;
}

export interface TrackerOptions {
  /** Share of the element that must be in view, 0..1. Default 0.5. */
  threshold?: number;
  /** How long it must stay in view (while the page is visible). Default 1000. */
  minVisibleMs?: number;
  /** How long impressions wait to be batched. Default 2000. */
  flushMs?: number;
  /** The scrolling container (an element); default the viewport. */
  root?: object | null;
  rootMargin?: string;
  /** Called when a batch could not be sent. Default `console.warn`. */
  onError?: (error: unknown) => void;
  /** For tests and other environments. Defaults: the globals. */
  IntersectionObserver?: IntersectionObserverLike;
  document?: EventTargetLike & { readonly visibilityState: string };
  window?: EventTargetLike;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
}

/** What the tracker needs of an `IntersectionObserver`; the browser's fits. */
export type IntersectionObserverLike = new (
  callback: (
    entries: Array<{ target: any; isIntersecting: boolean; intersectionRatio: number }>,
  ) => void,
  options: { root: any; rootMargin: string; threshold: number[] },
) => { observe(target: any): void; unobserve(target: any): void; disconnect(): void };

/** `document` and `window` as far as the tracker listens to them. */
export interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** Reports an impression once per result id, once its element was really seen. */
export declare class ImpressionTracker {
  constructor(client: BlendserveClient, options?: TrackerOptions);
  /** Watch a DOM element showing the item with this `result_id`. */
  observe(element: object, resultId: string): void;
  /** Stop watching an element. */
  unobserve(element: object): void;
  /** Send the queued impressions now. */
  flush(): Promise<void>;
  /** Stop watching, remove the page listeners, send what is queued. */
  disconnect(): Promise<void>;
}

/** What every error of the client carries. */
export interface ErrorDetails {
  status?: number;
  code?: string;
  field?: string | null;
  retryAfterS?: number | null;
  body?: unknown;
  cause?: unknown;
}

/** The root of every error the client throws. */
export declare class BlendserveError extends Error {
  constructor(message: string, details?: ErrorDetails);
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The API's machine-readable code: `unauthenticated`, `invalid_request`, `rate_limited`... */
  readonly code: string;
  /** The request field at fault (`k`, `events.3.result_id`), or null. */
  readonly field: string | null;
  /** Seconds the server asked to wait (`Retry-After`), or null. */
  readonly retryAfterS: number | null;
  /** The parsed error body. */
  readonly body: unknown;
}
/** 401: no key, or an unknown one. */
export declare class Unauthorized extends BlendserveError {}
/** 403: the key lacks the route's scope. */
export declare class Forbidden extends BlendserveError {}
/** 404: unknown use case, model or experiment. */
export declare class NotFound extends BlendserveError {}
/** Any other 4xx: 422 naming `field`, 413, 400. */
export declare class InvalidRequest extends BlendserveError {}
/** 429: over the key's rate limit. */
export declare class RateLimited extends BlendserveError {}
/** 503: overloaded, or no source could answer. */
export declare class Unavailable extends BlendserveError {}
/** Any other 5xx. */
export declare class ServerError extends BlendserveError {}
/** No HTTP answer (status 0): connection failed, or refused by CORS. */
export declare class NetworkError extends BlendserveError {}
/** No answer within `timeoutMs`. */
export declare class RequestTimeout extends NetworkError {}
