"""The chaos suite's accounting (``tests/chaos/report.py``) on hand-made timelines: a
fault's failures and recovery, items served while they had to be absent, writes whose
outcome cannot be known, and the generated sections of docs/RELIABILITY.md."""

from __future__ import annotations

from pathlib import Path

from report import (
    FaultWindow,
    deleted_items_served,
    expected_catalogue,
    row,
)
from traffic import Sample

from benchmarks.markdown import write_section


def _recommend(sent: float, done: float, *items: str, status: int = 200) -> Sample:
    return Sample("recommend", sent, done, status, item_ids=items)


def _write(kind: str, item: str, sent: float, done: float, status: int = 200) -> Sample:
    return Sample(kind, sent, done, status, item_ids=(item,), title=f"{item}@{sent}")


def test_a_fault_counts_what_was_sent_between_its_kill_and_its_end() -> None:
    window = FaultWindow("ingress replica", started=10.0, ended=20.0)
    samples = [
        _recommend(9.0, 9.1, status=0),  # before the kill: not this fault's
        _recommend(11.0, 11.1, status=503),
        _recommend(12.0, 14.5, status=0),
        Sample("recommend", 13.0, 13.2, 200, degraded=True),
        _recommend(15.0, 15.1),
        _recommend(21.0, 21.1, status=0),  # after its end
    ]
    attempts = [(11.0, "recommend", 503), (11.5, "recommend", 200), (12.0, "recommend", 0)]
    r = row(window, samples, attempts)
    assert (r.requests, r.failed, r.degraded) == (4, 2, 1)
    assert r.recovery_s == 4.5  # the last bad answer came at 14.5
    assert r.failures == {"recommend 503": 1, "recommend no answer": 1}
    assert (r.attempts_failed, r.failing_s) == (2, 1.0)


def test_an_item_may_be_served_until_a_second_after_its_delete_returned() -> None:
    samples = [
        _write("delete", "a", 10.0, 10.2),
        _recommend(10.5, 10.6, "a"),  # within the grace second: allowed
        _recommend(11.3, 11.4, "a", "b"),  # too late: a leak
        _recommend(12.0, 12.1, "b"),
        _write("restore", "a", 13.0, 13.1),
        _recommend(13.05, 13.2, "a"),  # answered after the restore was sent: fine
        _write("delete", "b", 20.0, 20.1, status=503),  # refused: b may stay
        _recommend(22.0, 22.1, "b"),
    ]
    leaks = deleted_items_served(samples)
    assert [(item, s.sent) for item, s in leaks] == [("a", 11.3)]


def test_the_expected_catalogue_leaves_out_what_cannot_be_known() -> None:
    samples = [
        _write("delete", "gone", 1.0, 1.1),
        _write("delete", "back", 1.0, 1.1),
        _write("restore", "back", 4.0, 4.1),
        _write("restore", "unanswered", 4.0, 4.1),
        _write("delete", "unanswered", 8.0, 18.0, status=0),  # may have happened
        _write("delete", "overlapping", 1.0, 6.0),  # retried, still in flight...
        _write("restore", "overlapping", 4.0, 4.1),  # ...when this one was sent
    ]
    assert expected_catalogue(samples) == {"gone": None, "back": "back@4.0"}


def test_generated_sections_replace_themselves_and_keep_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "RELIABILITY.md"
    path.write_text("# Title\n\nHand-written.\n")
    write_section(path, "faults", "| first |")
    write_section(path, "overload", "overload v1")
    write_section(path, "faults", "| second |")
    text = path.read_text()
    assert text.startswith("# Title\n\nHand-written.\n")
    assert "| second |" in text and "| first |" not in text
    assert text.index("| second |") < text.index("overload v1"), "in place, not appended"
