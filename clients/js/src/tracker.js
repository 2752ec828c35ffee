/**
 * `ImpressionTracker`: reports an impression of a served item once it has really
 * been seen: at least `threshold` of its element in view, for `minVisibleMs`, while
 * the page is visible. Each result id counts once; impressions go out in batches
 * every `flushMs`, and at once when the page is hidden or left (with keepalive, or
 * as a beacon), so the last ones are not lost.
 *
 * Touches no DOM until constructed, so importing it in Node is safe; tests pass a
 * fake `IntersectionObserver`, `document`, `window` and timers.
 *
 * @module
 */

/**
 * @typedef {import("./index.js").TrackerOptions} TrackerOptions
 * @typedef {{resultId: string, visible: boolean, timer: any}} Watched
 */

/** Watches elements that show served items and reports their impressions. */
export class ImpressionTracker {
  /**
   * @param {import("./client.js").BlendserveClient} client
   * @param {TrackerOptions} [options]
   */
  constructor(client, options = {}) {
    const {
      threshold = 0.5,
      minVisibleMs = 1000,
      flushMs = 2000,
      root = null,
      rootMargin = "0px",
      onError = (/** @type {unknown} */ error) => console.warn("blendserve impressions:", error),
      IntersectionObserver: Observer = globalThis.IntersectionObserver,
      document: doc = globalThis.document,
      window: win = globalThis.window,
      setTimeout: setTimer = globalThis.setTimeout.bind(globalThis),
      clearTimeout: clearTimer = globalThis.clearTimeout.bind(globalThis),
    } = options;
    if (!client || typeof client.impression !== "function") {
      throw new TypeError("client: expected a BlendserveClient");
    }
    if (!(typeof threshold === "number" && threshold >= 0 && threshold <= 1)) {
      throw new TypeError(`threshold: expected a number in [0, 1], got ${threshold}`);
    }
    for (const [name, value] of [
      ["minVisibleMs", minVisibleMs],
      ["flushMs", flushMs],
    ]) {
      if (!(typeof value === "number" && value >= 0)) {
        throw new TypeError(`${name}: expected a number >= 0, got ${value}`);
      }
    }
    if (typeof Observer !== "function") {
      throw new TypeError(
        "IntersectionObserver: this environment has none; pass one as an option (tests) " +
          "or construct the tracker in a browser",
      );
    }
    /** @private */ this._client = client;
    /** @private */ this._threshold = threshold;
    /** @private */ this._minVisibleMs = minVisibleMs;
    /** @private */ this._flushMs = flushMs;
    /** @private */ this._onError = onError;
    /** @private */ this._doc = doc;
    /** @private */ this._win = win;
    /** @private */ this._setTimer = setTimer;
    /** @private */ this._clearTimer = clearTimer;
    /** @private @type {Map<object, Watched>} */ this._watched = new Map();
    /** @private @type {Set<string>} result ids reported or queued: never again */
    this._seen = new Set();
    /** @private @type {string[]} */ this._queue = [];
    /** @private @type {any} */ this._flushTimer = null;
    /** @private */ this._closed = false;
    /** @private */
    this._observer = new Observer((entries) => this._onEntries(entries), {
      root: /** @type {any} */ (root),
      rootMargin,
      // 0 too, so leaving the view always fires, whatever the threshold.
      threshold: threshold > 0 ? [0, threshold] : [0],
    });
    /** @private */
    this._onVisibility = () => (this._pageHidden() ? this._hide() : this._show());
    /** @private */
    this._onPageHide = () => this._hide();
    doc?.addEventListener?.("visibilitychange", this._onVisibility);
    win?.addEventListener?.("pagehide", this._onPageHide);
  }

  /**
   * Start watching an element that shows the item with this `result_id`. An item
   * already reported is not watched again.
   * @param {object} element
   * @param {string} resultId
   */
  observe(element, resultId) {
    if (this._closed) throw new Error("observe: the tracker is disconnected");
    if (typeof resultId !== "string" || resultId === "") {
      throw new TypeError(
        `resultId: expected the item's result_id, got ${JSON.stringify(resultId)}`,
      );
    }
    if (this._seen.has(resultId)) return;
    this.unobserve(element);
    this._watched.set(element, { resultId, visible: false, timer: null });
    this._observer.observe(element);
  }

  /**
   * Stop watching an element (e.g. before a list re-renders); what it already
   * reported stays reported.
   * @param {object} element
   */
  unobserve(element) {
    const watched = this._watched.get(element);
    if (!watched) return;
    this._stopTimer(watched);
    this._watched.delete(element);
    this._observer.unobserve(element);
  }

  /**
   * Send the impressions queued so far now.
   * @returns {Promise<void>}
   */
  async flush() {
    if (this._flushTimer !== null) {
      this._clearTimer(this._flushTimer);
      this._flushTimer = null;
    }
    if (this._queue.length === 0) return;
    const ids = this._queue.splice(0);
    try {
      await this._client.impression(ids);
    } catch (error) {
      this._onError(error);
    }
  }

  /**
   * Stop watching everything, remove the page listeners and send what is queued.
   * Items that were in view for less than `minVisibleMs` are not reported.
   * @returns {Promise<void>}
   */
  disconnect() {
    this._closed = true;
    for (const watched of this._watched.values()) this._stopTimer(watched);
    this._watched.clear();
    this._observer.disconnect();
    this._doc?.removeEventListener?.("visibilitychange", this._onVisibility);
    this._win?.removeEventListener?.("pagehide", this._onPageHide);
    return this.flush();
  }

  /**
   * @private
   * @param {Array<{target: any, isIntersecting: boolean, intersectionRatio: number}>} entries
   */
  _onEntries(entries) {
    for (const entry of entries) {
      const watched = this._watched.get(entry.target);
      if (!watched) continue;
      // Browsers round ratios: 0.4999 at a 0.5 threshold counts as reached.
      watched.visible = entry.isIntersecting && entry.intersectionRatio >= this._threshold - 1e-3;
      if (!watched.visible) this._stopTimer(watched);
      else if (watched.timer === null && !this._pageHidden())
        this._startTimer(entry.target, watched);
    }
  }

  /**
   * @private
   * @param {object} element
   * @param {Watched} watched
   */
  _startTimer(element, watched) {
    watched.timer = this._setTimer(() => {
      watched.timer = null;
      if (watched.visible && !this._pageHidden()) this._record(element, watched.resultId);
    }, this._minVisibleMs);
  }

  /** @private @param {Watched} watched */
  _stopTimer(watched) {
    if (watched.timer !== null) {
      this._clearTimer(watched.timer);
      watched.timer = null;
    }
  }

  /**
   * @private
   * @param {object} element
   * @param {string} resultId
   */
  _record(element, resultId) {
    this.unobserve(element);
    if (this._seen.has(resultId)) return; // the same item in two places counts once
    this._seen.add(resultId);
    this._queue.push(resultId);
    if (this._flushTimer === null) {
      this._flushTimer = this._setTimer(() => {
        this._flushTimer = null;
        void this.flush();
      }, this._flushMs);
    }
  }

  /** @private Time in view while the page is hidden does not count; send what we have. */
  _hide() {
    for (const watched of this._watched.values()) this._stopTimer(watched);
    void this.flush();
  }

  /** @private The page is visible again: elements still in view start a new count. */
  _show() {
    for (const [element, watched] of this._watched) {
      if (watched.visible && watched.timer === null) this._startTimer(element, watched);
    }
  }

  /** @private */
  _pageHidden() {
    return this._doc?.visibilityState === "hidden";
  }
}
