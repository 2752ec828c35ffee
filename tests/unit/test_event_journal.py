"""The event log's state in one process (``deployments/events/journal.py``): every
event stored exactly once, whatever is resent or retried, across a restart, and with
the write-ahead log on a filesystem that fills up (a real tmpfs of 1 MiB). The
Parquet dataset is on local disk or on an S3-compatible server. No Ray."""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from small_disk import grow, mounted_tmpfs

from blending.result_ids import ResultIdCodec, ResultRef
from deployments.config import EventsConfig
from deployments.events.feedback import feedback_records
from deployments.events.journal import EventJournal
from deployments.events.records import FeedbackRecord, ServedList
from models.store import ArtifactStore

CODEC = ResultIdCodec(b"k" * 32)


def _served(request_id: str) -> ServedList:
    return ServedList(
        ts=time.time(),
        request_id=request_id,
        user="pseudonym",
        variant={},
        items=[f"i{n}" for n in range(10)],
        teams=[""] * 10,
        model_versions={"mf": "1"},
        latency_ms=2.0,
        degraded=False,
        use_case="home",
    )


def _feedback(event_id: str) -> FeedbackRecord:
    ref = ResultRef("r1", "home", 1, "i1", int(time.time()), {}, None)
    (record,), rejected = feedback_records(
        [{"result_id": CODEC.encode(ref), "event": "click", "event_id": event_id}],
        "events",
        CODEC,
    )
    assert not rejected
    return record


def _journal(root: Path, wal: Path | None = None, uri: str | None = None) -> EventJournal:
    config = EventsConfig(uri=uri or str(root / "events"), wal_dir=str(wal or root / "wal"))
    return EventJournal(config, ArtifactStore(root / "artifacts"), "app")


def _stored(journal: EventJournal) -> tuple[Counter[str], Counter[str]]:
    """How often each request id and each event id is in the Parquet dataset."""
    journal.store.flush()
    served = journal.store.read("served", ["request_id"]).column("request_id").to_pylist()
    feedback = journal.store.read("feedback", ["event_id"]).column("event_id").to_pylist()
    return Counter(served), Counter(feedback)


def test_a_resent_batch_and_a_retried_event_are_stored_once_even_after_a_restart(
    tmp_path: Path, events_uri: str
) -> None:
    first = _journal(tmp_path, uri=events_uri)
    served = [_served(f"r{n}") for n in range(5)]
    assert asyncio.run(first.append_served(served)) == 5
    # The ingress never heard back (say the answer was lost) and sends the batch again,
    # with one new list; a client retries a feedback batch with the same event ids.
    assert asyncio.run(first.append_served([*served, _served("r5")])) == 1
    stored = asyncio.run(first.append_feedback([_feedback("e1"), _feedback("e2")]))
    again = asyncio.run(first.append_feedback([_feedback("e1"), _feedback("e2")]))
    assert (stored.accepted, again.accepted, again.duplicates) == (2, 0, 2)
    assert first.arm_totals("home", "ab") == {}  # no experiment: nothing counted twice
    # Killed before flushing (no close): the WAL holds it all. The next replica
    # recovers it, and the same batch resent to it is still stored once.
    second = _journal(tmp_path, uri=events_uri)
    assert second.recovered == 8
    assert asyncio.run(second.append_served(served)) == 0
    assert asyncio.run(second.append_feedback([_feedback("e2")])).duplicates == 1
    requests, events = _stored(second)
    assert requests == Counter({f"r{n}": 1 for n in range(6)})
    assert events == Counter({"e1": 1, "e2": 1})


def _slow_writes(journal: EventJournal, seconds: float, fail: bool = False) -> None:
    """Make each WAL write take ``seconds`` (and then fail, with ``fail``): the window
    in which a sender gives up on its call and sends the batch again."""
    append = journal.store.append

    def slow(kind: str, rows: Any) -> int:
        if not rows:
            return 0
        time.sleep(seconds)
        if fail:
            raise OSError(errno.EIO, "the disk failed")
        return append(kind, rows)

    journal.store.append = slow  # type: ignore[method-assign]


def test_a_batch_resent_while_its_first_write_is_in_flight_is_stored_once(
    tmp_path: Path,
) -> None:
    """The sender cancels its call mid-write (its timeout) and resends at once: the
    first write still lands, the resend waits for it and stores nothing twice."""
    journal = _journal(tmp_path)
    batch = [_served(f"slow-{n}") for n in range(3)]
    _slow_writes(journal, 0.5)

    async def scenario() -> int:
        first = asyncio.ensure_future(journal.append_served(batch))
        await asyncio.sleep(0.1)
        first.cancel()  # what asyncio.wait_for does to the sender's call
        with pytest.raises(asyncio.CancelledError):
            await first
        return await journal.append_served(batch)

    assert asyncio.run(scenario()) == 0
    requests, _ = _stored(journal)
    assert requests == Counter({f"slow-{n}": 1 for n in range(3)})
    assert journal.traffic()["requests"] == 3, "counted once, though its caller left"


def test_a_resend_of_a_write_that_then_fails_fails_too_and_a_later_one_stores_it(
    tmp_path: Path,
) -> None:
    journal = _journal(tmp_path)
    batch = [_feedback("flaky-1"), _feedback("flaky-2")]
    _slow_writes(journal, 0.3, fail=True)

    async def scenario() -> None:
        first = asyncio.ensure_future(journal.append_feedback(batch))
        await asyncio.sleep(0.05)
        with pytest.raises(OSError, match="the disk failed"):
            await journal.append_feedback(batch)  # not "2 duplicates": it was never stored
        with pytest.raises(OSError):
            await first

    asyncio.run(scenario())
    journal.store.append = type(journal.store).append.__get__(journal.store)  # type: ignore[method-assign]
    assert asyncio.run(journal.append_feedback(batch)).accepted == 2
    _, events = _stored(journal)
    assert events == Counter({"flaky-1": 1, "flaky-2": 1})


SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs."""
    with mounted_tmpfs(tmp_path / "small", "1m") as mount:
        yield mount


def test_a_full_disk_refuses_writes_loses_nothing_acknowledged_and_writing_resumes(
    tmp_path: Path, small_disk: Path
) -> None:
    """The WAL on a 1 MiB filesystem: appends fail with ENOSPC once it is full (and
    nothing of a refused batch is acknowledged or left behind in the WAL), reads go
    on, and writing resumes in the same WAL segment once there is room again."""
    journal = _journal(tmp_path, wal=small_disk)
    acknowledged: list[str] = []
    refused: OSError | None = None
    for batch in range(2000):
        lists = [_served(f"b{batch}-{n}-{uuid.uuid4().hex}") for n in range(20)]
        try:
            asyncio.run(journal.append_served(lists))
        except OSError as exc:
            refused = exc
            break
        acknowledged += [record.request_id for record in lists]
    assert refused is not None and refused.errno == errno.ENOSPC, "the disk never filled"
    assert acknowledged, "some batches fitted first"
    assert journal.traffic()["requests"] == len(acknowledged)  # reads still work
    # Space returns. The refused batch, sent again as the ingress does, is stored (its
    # ids were not kept as seen), after whatever part of it the full disk took was cut
    # off (else the first line written now would be glued to it and lost on recovery).
    grow(small_disk, "4m")
    assert asyncio.run(journal.append_served(lists)) == len(lists)
    later = [_served(f"later-{n}") for n in range(20)]
    assert asyncio.run(journal.append_served(later)) == 20
    # Killed now, then recovered: every acknowledged list once, nothing torn.
    requests, _ = _stored(_journal(tmp_path, wal=small_disk))
    expected = {*acknowledged, *(r.request_id for r in lists), *(r.request_id for r in later)}
    assert set(requests) == expected
    assert set(requests.values()) == {1}


def test_the_event_log_answers_every_call_on_its_event_loop() -> None:
    # Serve runs a plain method in a thread: iterating the totals there raced the
    # event loop adding feedback ("dictionary changed size during iteration", 500 on
    # the experiment API under make power's load). Every method must be a coroutine.
    from deployments.serve.event_log import EventLog

    cls = EventLog.func_or_class
    public = {n: f for n, f in vars(cls).items() if callable(f) and not n.startswith("_")}
    assert "interleaving" in public and "arm_totals" in public
    assert [n for n, f in public.items() if not inspect.iscoroutinefunction(f)] == []
