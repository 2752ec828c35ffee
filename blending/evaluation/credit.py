"""Interleaving by credited clicks: each team's share of the clicks, per list.

The sign test counts a list as one win for the team whose items got more clicks and
drops ties, so a list with three clicks for one team and none for the other weighs
the same as a list with one against none, and a tie is lost evidence. Counting the
clicks instead (each team's *share of credited clicks*, with the lists as the units
of a ratio estimate and a delta-method variance) keeps that evidence, so it reaches
the same power with fewer lists (``tests/unit/test_credit.py``; ``make power`` reads
both tests on the same runs). The credit is team-draft interleaving's (Radlinski,
Kurup & Joachims 2008, "How does clickthrough data reflect retrieval quality?",
CIKM); here it is tested as a ratio of means over lists.

Under no preference, each team gets half of the credited clicks; the test's effect is
the first team's share minus one half, on the same scale as the win share the sign
test reads (0.05 is a 55/45 split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

__all__ = ["MIN_LISTS", "CreditTotals", "credit_test"]


@dataclass(frozen=True)
class CreditTotals:
    """Sums over the clicked lists of two teams' credited clicks ``a`` and ``b``."""

    lists: int = 0
    a: int = 0
    b: int = 0
    aa: int = 0
    """Sum over lists of a squared."""
    bb: int = 0
    """Sum over lists of b squared."""
    ab: int = 0
    """Sum over lists of a times b."""

    def add(self, a: int, b: int, lists: int = 1) -> CreditTotals:
        """These totals with ``lists`` more lists of ``a`` and ``b`` clicks."""
        return CreditTotals(
            self.lists + lists,
            self.a + a * lists,
            self.b + b * lists,
            self.aa + a * a * lists,
            self.bb + b * b * lists,
            self.ab + a * b * lists,
        )

    def share(self) -> float | None:
        """The first team's share of the credited clicks (None without any)."""
        clicks = self.a + self.b
        return self.a / clicks if clicks else None

    def share_variance(self) -> float | None:
        """The delta-method variance of :meth:`share` over lists (None with fewer than
        two lists or no clicks): ``sum((a_i - s t_i)^2) / T^2`` with ``t_i = a_i + b_i``
        and ``T`` all credited clicks, scaled by ``n / (n - 1)``; ``0.25 / T`` when every
        list splits alike."""
        share, n = self.share(), self.lists
        if share is None or n < 2:
            return None
        total = self.a + self.b
        a_t = self.aa + self.ab  # sum of a_i * t_i
        t_t = self.aa + 2 * self.ab + self.bb  # sum of t_i^2
        residual = self.aa - 2 * share * a_t + share * share * t_t
        if residual <= 0:
            # Every list split its clicks alike (all to one team, say): no spread to
            # measure yet, so take the clicks as independent, as the null has them.
            return 0.25 / total
        return residual / (total * total) * n / (n - 1)


MIN_LISTS = 20
"""Clicked lists the normal approximation needs before the test reads anything."""


def credit_test(totals: CreditTotals) -> float | None:
    """Two-sided p-value that each team gets half the credited clicks (None before
    :data:`MIN_LISTS` clicked lists)."""
    share, variance = totals.share(), totals.share_variance()
    if totals.lists < MIN_LISTS or share is None or variance is None:
        return None
    z = (share - 0.5) / math.sqrt(variance)
    return float(2.0 * stats.norm.sf(abs(z)))
