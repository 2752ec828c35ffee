"""The event log's store: write-ahead, flush to partitioned Parquet, recovery after a
kill, exactly once; feedback checked entry by entry; online totals. The store tests
run with the dataset on local disk and on an S3-compatible server (moto's, a real
process speaking S3 over HTTP). No Ray."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from blending.evaluation.credit import CreditTotals
from blending.result_ids import ResultIdCodec, ResultRef
from deployments.events.counts import EventCounts
from deployments.events.feedback import Pseudonymizer, feedback_records
from deployments.events.store import EventStore

CODEC = ResultIdCodec(b"k" * 32)


def _feedback(n: int, event: str = "click", use_case: str = "home") -> dict[str, Any]:
    ref = ResultRef(f"r{n}", use_case, 1, f"i{n}", int(time.time()), {"ab": "b"}, "t1")
    (record,), rejected = feedback_records(
        [{"result_id": CODEC.encode(ref), "event": event, "event_id": f"e{n}-{event}"}],
        "events",
        CODEC,
    )
    assert not rejected
    return record.row()


def _served(n: int) -> dict[str, Any]:
    return {
        "ts": time.time(),
        "request_id": f"r{n}",
        "user": "pseudonym",
        "variant": {"ab": "b"},
        "items": ["i1", "i2"],
        "teams": ["", ""],
        "model_versions": {"mf": "1"},
        "latency_ms": 3.5,
        "degraded": False,
        "use_case": "home",
    }


def test_events_reach_partitioned_parquet_and_leave_the_wal(
    tmp_path: Path, events_uri: str
) -> None:
    store = EventStore(events_uri, tmp_path / "wal")
    store.append("feedback", [_feedback(1), _feedback(2, use_case="discover")])
    store.append("served", [_served(1)])
    assert store.flush() == 3
    assert list((tmp_path / "wal").glob("*.jsonl")) == [store._path]  # only the new segment
    feedback = store.read("feedback")
    assert sorted(feedback.column("event_id").to_pylist()) == ["e1-click", "e2-click"]
    assert sorted(feedback.column("use_case").to_pylist()) == ["discover", "home"]
    listed = store.filesystem.get_file_info(pafs.FileSelector(f"{store.root}/feedback"))
    dates = {Path(info.path).name for info in listed}
    assert dates == {f"date={time.strftime('%Y-%m-%d', time.gmtime())}"}
    served = store.read("served").to_pylist()[0]
    assert served["items"] == ["i1", "i2"] and dict(served["variant"]) == {"ab": "b"}


def test_readers_never_open_a_file_being_written(tmp_path: Path) -> None:
    store = EventStore(str(tmp_path / "events"), tmp_path / "wal")
    store.append("served", [_served(1)])
    # What a writer killed mid-file leaves: readers do not look where files are written.
    partition = f"date={time.strftime('%Y-%m-%d', time.gmtime())}/use_case=home"
    torn = tmp_path / "events" / "served" / "_staging" / "old" / partition / "part-old-0.parquet"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"PAR1")
    assert store.read("served").num_rows == 0
    assert store.flush() == 1
    assert store.read("served").column("request_id").to_pylist() == ["r1"]
    served = tmp_path / "events" / "served"
    assert not (served / "_staging").exists()
    (written,) = served.rglob("*.parquet")
    assert written.parent == served / partition


def test_a_killed_writer_loses_no_acknowledged_event_and_duplicates_none(
    tmp_path: Path, events_uri: str
) -> None:
    killed = EventStore(events_uri, tmp_path / "wal")
    killed.append("feedback", [_feedback(n) for n in range(5)])
    killed.flush()  # 5 in Parquet
    killed.append("feedback", [_feedback(n) for n in range(5, 8)])  # acked, not flushed
    # A crash between writing Parquet and deleting the segment: the segment stays.
    segment = killed._path
    pending = killed.pending()
    killed._write(segment.stem, pending)
    with segment.open("a") as handle:
        handle.write('{"kind": "feedback", "torn')  # the last write of a killed process
    restarted = EventStore(events_uri, tmp_path / "wal")
    assert restarted.recover() == 3
    ids = restarted.read("feedback").column("event_id").to_pylist()
    assert sorted(ids) == sorted(f"e{n}-click" for n in range(8))


def test_flush_is_due_by_time_or_count(tmp_path: Path) -> None:
    store = EventStore(str(tmp_path / "e"), tmp_path / "w", flush_interval_s=60, flush_max_events=3)
    assert not store.flush_due()
    store.append("served", [_served(1), _served(2)])
    assert not store.flush_due()
    store.append("served", [_served(3)])
    assert store.flush_due()


def test_feedback_entries_are_checked_one_by_one() -> None:
    good = CODEC.encode(ResultRef("r1", "home", 2, "i9", int(time.time())))
    forged = ResultIdCodec(b"x" * 32).encode(ResultRef("r1", "home", 2, "i9", 0))
    entries = [
        {"result_id": good, "event": "impression"},
        {"result_id": forged, "event": "click"},
        {"result_id": good, "event": "like"},
        {"result_id": good, "event": "click", "ts": "2001-01-01T00:00:00+00:00"},
        "not an object",
    ]
    records, rejected = feedback_records(entries, "events", CODEC)
    assert [r.item_id for r in records] == ["i9"] and records[0].position == 2
    assert [(r.index, r.field) for r in rejected] == [
        (1, "events.1.result_id"),
        (2, "events.2.event"),
        (3, "events.3.ts"),
        (4, "events.4"),
    ]
    assert "not a result id this service issued" in rejected[0].message


def test_pseudonyms_are_stable_keyed_and_not_the_id() -> None:
    one, other = Pseudonymizer(b"s" * 16), Pseudonymizer(b"t" * 16)
    assert one("u42") == one("u42") != other("u42")
    assert "u42" not in one("u42") and len(one("u42")) == 32


def test_counts_take_one_impression_and_click_per_item_and_interleaving_wins() -> None:
    counts = EventCounts()
    counts.add_served(_served(1))
    for record in (_feedback(1, "impression"), _feedback(1, "impression"), _feedback(1)):
        counts.add_feedback(record)
    totals = counts.arm_totals("home", "ab")["b"]
    assert (totals.requests, totals.impressions, totals.clicks) == (1, 1, 1)
    found = counts.interleaving("home", ["t1", "t2"])
    wins, ties = found.wins, found.ties
    assert wins == {"t1": 1, "t2": 0} and ties == 0
    assert found.credit == CreditTotals(lists=1, a=1, b=0, aa=1, bb=0, ab=0)
    traffic = counts.traffic()
    assert traffic["requests"] == 1 and traffic["p50_ms"] == 3.5
    assert traffic["by_use_case"]["home"]["degraded_share"] == 0
    assert traffic["by_use_case"]["home"]["ctr"] == 1.0  # one item seen, one clicked


def test_counts_rebuilt_from_the_dataset_match_the_live_ones(
    tmp_path: Path, events_uri: str
) -> None:
    store = EventStore(events_uri, tmp_path / "wal")
    live = EventCounts()
    served = [_served(n) for n in range(3)]
    feedback = [_feedback(n, e) for n in range(3) for e in ("impression", "click")]
    store.append("served", served)
    store.append("feedback", feedback)
    store.flush()
    for record in served:
        live.add_served(record)
    for record in feedback:
        live.add_feedback(record)
    rebuilt = EventCounts.rebuild(store.read("served"), store.read("feedback"))
    assert rebuilt.arm_totals("home", "ab") == live.arm_totals("home", "ab")
    assert rebuilt.interleaving("home", ["t1", "t2"]) == live.interleaving("home", ["t1", "t2"])


def test_the_dataset_is_readable_with_plain_pyarrow(tmp_path: Path, events_uri: str) -> None:
    store = EventStore(events_uri, tmp_path / "wal")
    store.append("feedback", [_feedback(1)])
    store.flush()
    filesystem, root = (
        pafs.FileSystem.from_uri(events_uri)
        if "://" in events_uri
        else (pafs.LocalFileSystem(), events_uri)
    )
    table = ds.dataset(f"{root}/feedback", filesystem=filesystem, partitioning="hive").to_table()
    assert table.num_rows == 1 and table.column("use_case").to_pylist() == ["home"]
    assert json.loads(json.dumps(table.column("event").to_pylist())) == ["click"]


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        EventStore(str(tmp_path / "e"), tmp_path / "w").append("clicks", [{}])


def test_report_prints_the_experiments_from_the_dataset(
    tmp_path: Path, events_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from deployments.cli.main import main

    store = EventStore(events_uri, tmp_path / "wal")
    served, feedback = [], []
    for n in range(400):
        arm = ("clicky", "taste", "clicky", "taste", "interleaved")[n % 5]  # 40/40/20
        ref = ResultRef(f"r{n}", "discover", 1, f"i{n}", int(time.time()), {"ab": arm})
        served.append({**_served(n), "use_case": "discover", "variant": {"ab": arm}})
        result_id = CODEC.encode(ref)
        events = [{"result_id": result_id, "event": "impression"}]
        if arm == "clicky" and n % 2 == 0:  # half of clicky's items are clicked, no others
            events.append({"result_id": result_id, "event": "click"})
        feedback += [r.row() for r in feedback_records(events, "events", CODEC)[0]]
    store.append("served", served)
    store.append("feedback", feedback)
    store.flush()
    config = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
    uri = events_uri
    assert main(["report", str(config), "--events", uri, "--experiment", "discover.ab"]) == 0
    out = capsys.readouterr().out
    assert "discover.ab (experiment)" in out and "taste (control)" in out
    assert "verdict: clicky beats taste" in out
    assert main(["report", str(config), "--events", uri, "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in reports} == {"discover.ab", "discover.head_to_head"}
    assert main(["report", str(config), "--events", uri, "--experiment", "nope.x"]) == 2


def test_per_list_sums_follow_each_lists_counts() -> None:
    counts = EventCounts()
    events = [(1, "impression"), (1, "impression"), (1, "click"), (2, "impression")]
    for n, (request, event) in enumerate(events):
        ref = ResultRef(f"r{request}", "home", 1, f"i{n}", int(time.time()), {"ab": "b"})
        (record,), _ = feedback_records(
            [{"result_id": CODEC.encode(ref), "event": event}], "events", CODEC
        )
        counts.add_feedback(record.row())
    totals = counts.arm_totals("home", "ab")["b"]
    # Lists: r1 has 1 click in 2 impressions, r2 none in 1.
    assert (totals.units, totals.clicks_sq, totals.impressions_sq, totals.cross) == (2, 1, 5, 2)


def test_recent_traffic_keeps_one_window_even_when_no_dashboard_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 30-minute soak with nobody on the dashboard grew the event log by every
    served list; only the last minute is ever shown."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    counts = EventCounts()
    served = {"use_case": "home", "variant": {}, "latency_ms": 3.0, "degraded": False}
    for _ in range(600):  # ten minutes at one a second
        counts.add_served(served)
        clock[0] += 1.0
    assert len(counts.recent) <= 61
    assert counts.traffic()["by_use_case"]["home"]  # what the dashboard reads still works


def _day_of_feedback(counts: EventCounts, day: int, lists: int) -> None:
    """``lists`` interleaved lists served on ``day`` (an impression and, for two thirds,
    clicks for a team) with feedback a minute later."""
    start = 1_800_000_000 + day * 86_400
    for n in range(lists):
        served = start + n * (86_400 // lists)
        for event, team in (("impression", None), ("click", "t1" if n % 3 else "t2")):
            if event == "click" and n % 3 == 2:
                continue
            counts.add_feedback(
                {
                    "event": event,
                    "result_id": f"d{day}-{n}",
                    "use_case": "home",
                    "variant": {"ab": "a" if n % 2 else "b"},
                    "team": team,
                    "request_id": f"d{day}-{n}",
                    "served_at": served,
                    "ts": served + 60,
                }
            )


def test_lists_leave_memory_two_days_after_serving_and_the_totals_stay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bounded = EventCounts()
    for day in range(6):
        _day_of_feedback(bounded, day, 300)
    assert len(bounded.lists) <= 2 * 300 + 2 and len(bounded.team_clicks) <= 2 * 300 + 2
    monkeypatch.setattr("deployments.events.counts.OPEN_FOR_S", 1e12)
    every = EventCounts()
    for day in range(6):
        _day_of_feedback(every, day, 300)
    assert len(every.lists) == 6 * 300
    assert bounded.arm_totals("home", "ab") == every.arm_totals("home", "ab")
    assert bounded.interleaving("home", ["t1", "t2"]) == every.interleaving("home", ["t1", "t2"])
