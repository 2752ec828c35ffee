// Test helpers (not a test file): a fake blendserve API on 127.0.0.1 and fake timers.
import http from "node:http";

export const INFER_KEY = "bsk_test_infer";
export const ADMIN_KEY = "bsk_test_admin";

/**
 * A local server that answers like blendserve's ingress: API keys and scopes,
 * recommendations, feedback with event-id de-duplication and per-entry refusals.
 * `api.script(path, ...answers)` makes the next requests to `path` get those answers
 * first (`{status, retryAfter, body, delayMs, store}`), then the normal one.
 */
export async function startFakeApi() {
  const requests = [];
  const scripted = new Map();
  const stored = new Map(); // event_id -> event
  const sockets = new Set();
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString();
    const body = text ? JSON.parse(text) : null;
    const path = req.url;
    requests.push({ method: req.method, path, headers: req.headers, body });
    const send = (status, payload, headers = {}) => {
      if (res.destroyed) return;
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(typeof payload === "string" ? payload : JSON.stringify(payload));
    };
    const next = scripted.get(path)?.shift();
    if (next) {
      if (next.delayMs) await new Promise((r) => setTimeout(r, next.delayMs));
      if (next.store) answerFeedback(body, stored); // stored, then the answer is lost
      if (next.status) {
        const headers = next.retryAfter === undefined ? {} : { "Retry-After": next.retryAfter };
        const payload = next.body ?? {
          error: { code: `scripted_${next.status}`, message: "scripted" },
        };
        return send(next.status, payload, headers);
      }
    }
    const key = bearer(req.headers);
    if (key !== INFER_KEY && key !== ADMIN_KEY) {
      return send(
        401,
        { error: { code: "unauthenticated", message: "invalid API key" } },
        {
          "WWW-Authenticate": "Bearer",
        },
      );
    }
    const recommend = path.match(/^\/v1\/recommend\/([^/]+)$/);
    if (req.method === "POST" && recommend) {
      if (recommend[1] !== "home") {
        return send(404, {
          error: {
            code: "not_found",
            message: `unknown use case '${recommend[1]}'`,
            field: "use_case",
          },
        });
      }
      const k = body.k ?? 10;
      if (!(k >= 1 && k <= 100)) {
        const message = "k: Input should be greater than or equal to 1";
        return send(422, { error: { code: "invalid_request", message, field: "k", problems: [] } });
      }
      const items = Array.from({ length: k }, (_, i) => ({
        item_id: `a${i + 1}`,
        result_id: `rid-${i + 1}`,
        score: 1 - i / 10,
        pinned: false,
        components: [],
      }));
      return send(200, {
        request_id: "req1",
        use_case: "home",
        items,
        model_versions: { mf: "1" },
        degraded: false,
      });
    }
    if (req.method === "POST" && path === "/v1/feedback") {
      const answer = answerFeedback(body, stored);
      if (answer.rejected.length) {
        const first = answer.rejected[0];
        const error = {
          code: "invalid_input",
          message: `${first.field}: forged`,
          field: first.field,
        };
        return send(422, { error, ...answer });
      }
      return send(202, answer);
    }
    if (req.method === "GET" && path === "/v1/experiments") {
      if (key !== ADMIN_KEY) {
        return send(403, {
          error: { code: "forbidden", message: "key 'web' lacks the 'admin' scope" },
        });
      }
      return send(200, { experiments: ["discover.ab"] });
    }
    return send(404, { error: { code: "http_error", message: "Not Found" } });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stored,
    /** Answers the next requests to `path` get before the normal one. */
    script(path, ...answers) {
      scripted.set(path, [...(scripted.get(path) ?? []), ...answers]);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function bearer(headers) {
  const auth = headers.authorization ?? "";
  return auth.startsWith("Bearer ") ? auth.slice(7) : headers["x-api-key"];
}

/** Stores good events once per event_id; refuses result ids starting with "bad". */
function answerFeedback(body, stored) {
  const events = body.events ?? [body];
  const answer = { accepted: 0, duplicates: 0, rejected: [] };
  events.forEach((event, index) => {
    if (event.result_id.startsWith("bad")) {
      answer.rejected.push({ index, field: `events.${index}.result_id`, message: "forged" });
    } else if (event.event_id && stored.has(event.event_id)) {
      answer.duplicates += 1;
    } else {
      stored.set(event.event_id ?? `anon-${stored.size}`, event);
      answer.accepted += 1;
    }
  });
  return answer;
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once `condition()` is true; fails after `timeoutMs`. */
export async function waitFor(condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A `sleep` that returns at once and records what it was asked to wait. */
export function fakeSleep() {
  const waits = [];
  const sleep = async (ms) => {
    waits.push(ms);
  };
  return { sleep, waits };
}

/** `fetch` that records each call's init (method, keepalive...) and delegates. */
export function recordingFetch() {
  const calls = [];
  const fetchImpl = (url, init) => {
    calls.push({ url, init });
    return globalThis.fetch(url, init);
  };
  return { fetch: fetchImpl, calls };
}

/** Timers that only move when `advance(ms)` says so. */
export function fakeTimers() {
  let now = 0;
  let nextId = 1;
  const pending = new Map(); // id -> {at, fn}
  return {
    setTimeout(fn, ms) {
      const id = nextId++;
      pending.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...pending]
          .filter(([, t]) => t.at <= until)
          .sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        pending.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
    },
    get pending() {
      return pending.size;
    },
  };
}

/**
 * An IntersectionObserver stand-in: `show(element, ratio)` delivers an entry to the
 * observers watching that element, as a browser would on scroll.
 */
export function fakeIntersectionObserver() {
  const instances = [];
  class FakeIntersectionObserver {
    constructor(callback, options) {
      this.callback = callback;
      this.options = options;
      this.targets = new Set();
      instances.push(this);
    }
    observe(element) {
      this.targets.add(element);
    }
    unobserve(element) {
      this.targets.delete(element);
    }
    disconnect() {
      this.targets.clear();
    }
  }
  const show = (element, ratio) => {
    for (const observer of instances) {
      if (!observer.targets.has(element)) continue;
      const entry = { target: element, isIntersecting: ratio > 0, intersectionRatio: ratio };
      observer.callback([entry], observer);
    }
  };
  return { IntersectionObserver: FakeIntersectionObserver, instances, show };
}

/** A document and window with visibility and listeners that tests control. */
export function fakePage() {
  const listeners = { document: new Map(), window: new Map() };
  const target = (kind) => ({
    addEventListener(type, fn) {
      listeners[kind].set(type, [...(listeners[kind].get(type) ?? []), fn]);
    },
    removeEventListener(type, fn) {
      listeners[kind].set(
        type,
        (listeners[kind].get(type) ?? []).filter((f) => f !== fn),
      );
    },
  });
  const document = { visibilityState: "visible", ...target("document") };
  const window = target("window");
  return {
    document,
    window,
    setVisibility(state) {
      document.visibilityState = state;
      for (const fn of listeners.document.get("visibilitychange") ?? []) fn();
    },
    pagehide() {
      for (const fn of listeners.window.get("pagehide") ?? []) fn();
    },
    listenerCount() {
      return [...listeners.document.values(), ...listeners.window.values()].flat().length;
    },
  };
}
