"""Batch size and wait that adapt to load and latency (AIMD, as in Clipper).

Plain Python, no Ray: ``ModelServer`` feeds every batch it ran to
:meth:`AdaptiveBatching.observe` and applies :attr:`~AdaptiveBatching.size` and
:attr:`~AdaptiveBatching.wait_s` to its ``@serve.batch`` queue.

* Size: grows by one after a full batch that finished inside the target (additive
  increase), shrinks to ``decrease`` times what ran after a batch that overran it
  (multiplicative decrease). So it settles just under the largest batch the
  model can run within the target.
* Wait: zero while calls arrive alone (a lone request never waits for company),
  doubles from a small step while batches form but stay partly empty (more calls
  are coming: waiting a little fills them), halves once they fill, and drops to
  zero when a batch overruns the target. Never above ``max_wait_s``.
"""

from __future__ import annotations

import math

__all__ = ["AdaptiveBatching"]

_FIRST_WAIT_S = 0.0005


class AdaptiveBatching:
    """The AIMD controller of one batch queue."""

    def __init__(
        self,
        max_size: int,
        max_wait_s: float,
        target_s: float,
        *,
        increase: int = 1,
        decrease: float = 0.75,
    ) -> None:
        if max_size < 1 or target_s <= 0 or not 0 < decrease < 1 or max_wait_s < 0:
            raise ValueError("need max_size >= 1, target_s > 0, 0 < decrease < 1, max_wait_s >= 0")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.target_s = target_s
        self.increase = increase
        self.decrease = decrease
        self.size = 1
        self.wait_s = 0.0

    def observe(self, n_calls: int, duration_s: float) -> None:
        """Account for one batch of ``n_calls`` that took ``duration_s`` to run."""
        if duration_s > self.target_s:
            self.size = max(1, math.floor(min(n_calls, self.size) * self.decrease))
            self.wait_s = 0.0
            return
        full = n_calls >= self.size
        if full:
            self.size = min(self.max_size, self.size + self.increase)
        if n_calls <= 1:
            self.wait_s = 0.0
        elif not full:
            grown = self.wait_s * 2 if self.wait_s else _FIRST_WAIT_S
            # Waiting must leave the batch room to run inside the target.
            room = max(self.target_s - duration_s, 0.0)
            self.wait_s = min(self.max_wait_s, grown, room)
        else:
            self.wait_s /= 2
