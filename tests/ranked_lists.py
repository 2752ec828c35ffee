"""Build and read the engine's columnar lists in unit tests, by item id."""

from __future__ import annotations

from collections.abc import Iterable

from blending.candidates import Candidate, SourceResult
from blending.items import ItemTable
from blending.nodes import RequestItems, from_source
from blending.ranked import Ranked


class Lists:
    """One item table, and lists over it written and read as ids and scores."""

    def __init__(self, table: ItemTable | None = None) -> None:
        self.table = table or ItemTable()

    def source(self, name: str, *items: tuple[str, float], curated: bool = False) -> Ranked:
        """A source node's list of ``(item_id, score)``, best first."""
        return from_source(
            name, SourceResult.from_pairs(name, "1", list(items), curated), self.table
        )

    def ids(self, ranked: Ranked) -> list[str]:
        """The list's item ids, in order."""
        return self.table.ids_of(ranked.items)

    def rows(self, ranked: Ranked) -> list[Candidate]:
        """The list as candidates, with their provenance."""
        return ranked.candidates(self.table)

    def request(self, exclude: Iterable[str] = (), catalog: bool = False) -> RequestItems:
        """A request's view of the items, excluding ``exclude``."""
        return RequestItems(self.table, frozenset(exclude), catalog)
