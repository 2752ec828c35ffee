"""The benchmark's pure parts: wrk output parsing, CPU accounting, report maths."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.cpu import ProcessCpu, cpu_delta, parse_stat, top_processes
from benchmarks.loadgen import WrkResult, lua_script, parse_wrk_output, wrk_command
from benchmarks.profile import NATIVE, summarize
from benchmarks.report import (
    FINDINGS_END,
    FINDINGS_START,
    Measurement,
    assess_targets,
    keep_findings,
    ratios,
)

WRK_JSON_LINE = (
    'WRK_JSON {"requests":5377,"duration_us":5002000,"bytes":3470000,"connect":0,"read":2,'
    '"write":0,"status":3,"timeout":1,"p50_us":12330,"p90_us":24960,"p99_us":57260,'
    '"mean_us":15420.5,"max_us":106680}'
)

WRK_REPORT = """\
Running 5s test @ http://127.0.0.1:18080/v2/models/click_model/infer
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    15.42ms    9.10ms   1.07s    88.04%
    Req/Sec     1.08k   344.27     1.58k    52.00%
  Latency Distribution
     50%  850.00us
     75%   16.00ms
     90%   24.96ms
     99%    1.20s
  5377 requests in 5.00s, 3.31MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:   1074.74
Transfer/sec:    678.01KB
"""


def _wrk(rps: float, p50_ms: float = 1.0, p99_ms: float = 2.0, errors: int = 0) -> WrkResult:
    return WrkResult(int(rps * 10), 10.0, p50_ms, p50_ms, p99_ms, p50_ms, p99_ms, errors, 0)


def _m(key: str, c: int, rps: float, p50_ms: float = 1.0, p99_ms: float = 2.0) -> Measurement:
    return Measurement(key, key, "POST /x", c, _wrk(rps, p50_ms, p99_ms), cpu_s=rps * 10 * 0.002)


def test_done_hook_line_gives_exact_counts_in_milliseconds() -> None:
    result = parse_wrk_output("Running 5s test\n" + WRK_JSON_LINE + "\nRequests/sec: 1\n")
    assert result.requests == 5377 and result.duration_s == pytest.approx(5.002)
    assert (result.p50_ms, result.p90_ms, result.p99_ms) == (12.33, 24.96, 57.26)
    assert result.mean_ms == pytest.approx(15.4205) and result.max_ms == 106.68
    assert (result.status_errors, result.socket_errors, result.errors) == (3, 3, 6)
    assert result.rps == pytest.approx(5377 / 5.002)


def test_plain_report_is_parsed_with_its_units_when_the_hook_line_is_missing() -> None:
    result = parse_wrk_output(WRK_REPORT)
    assert result.requests == 5377 and result.duration_s == 5.0
    assert result.p50_ms == pytest.approx(0.85) and result.p99_ms == pytest.approx(1200.0)
    assert result.p90_ms == pytest.approx(24.96) and result.max_ms == pytest.approx(1070.0)
    assert (result.status_errors, result.socket_errors) == (3, 3)


def test_report_without_latency_distribution_is_refused() -> None:
    without = "\n".join(line for line in WRK_REPORT.splitlines() if "%" not in line)
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk_output(without)
    with pytest.raises(ValueError, match="not wrk output"):
        parse_wrk_output("connection refused")


def test_lua_script_posts_the_json_body_and_reports_from_done() -> None:
    script = lua_script({"user_id": "u1", "k": 2})
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = [==[{"user_id":"u1","k":2}]==]' in script
    assert "application/json" in script and "done = function" in script
    with pytest.raises(ValueError, match="long-string"):
        lua_script({"x": "]==]"})
    signed = lua_script({"k": 1}, headers={"Authorization": 'Bearer k"1'})
    assert 'wrk.headers["Authorization"] = "Bearer k\\"1"' in signed


def test_wrk_runs_one_thread_pinned_to_one_core() -> None:
    command = wrk_command("http://127.0.0.1:1/x", Path("s.lua"), 16, 8, core=1)
    assert command[:3] == ["taskset", "-c", "1"]
    assert "-t1" in command and "-c16" in command and "-d8s" in command
    assert wrk_command("u", Path("s.lua"), 1, 2, core=None)[0].endswith("wrk")


def test_stat_line_with_parentheses_in_the_command_is_parsed() -> None:
    fields = ["S", "1", "10", "42"] + ["0"] * 7 + ["150", "50"] + ["0"] * 6 + ["999", "0"]
    stat = "1234 (ray::Serve (x) y) " + " ".join(fields)
    session, cpu_s, start, state = parse_stat(stat)
    assert (session, start, state) == (42, 999, "S")
    assert cpu_s > 0


def test_cpu_delta_counts_new_processes_from_zero_and_tells_reused_pids_apart() -> None:
    before = {(1, 10): ProcessCpu(1, 10, 5.0, "ingress"), (2, 20): ProcessCpu(2, 20, 1.0, "old")}
    after = {
        (1, 10): ProcessCpu(1, 10, 7.5, "ingress"),
        (2, 99): ProcessCpu(2, 99, 0.25, "new"),  # pid 2 reused by a new process
    }
    assert cpu_delta(before, after) == {"ingress [1]": 2.5, "new [2]": 0.25}


def test_top_processes_folds_the_rest_into_other() -> None:
    spent = {"a": 3.0, "b": 2.0, "c": 0.5, "d": 0.25}
    assert top_processes(spent, n=2) == {"a": 3.0, "b": 2.0, "other": 0.75}


def test_cpu_per_request_is_server_cpu_over_completed_requests() -> None:
    m = Measurement("a", "blendserve", "POST /x", 16, _wrk(100.0), cpu_s=3.0)
    assert m.cpu_ms_per_request == pytest.approx(3.0)  # 3 s over 1000 requests
    empty = Measurement("a", "blendserve", "POST /x", 16, _wrk(0.0), cpu_s=1.0)
    assert math.isnan(empty.cpu_ms_per_request)


def test_ratios_pair_systems_at_the_same_concurrency_only() -> None:
    results = [_m("a", 16, 400, 40), _m("c", 16, 2000, 8), _m("c", 1, 2000, 0.5)]
    (ratio,) = ratios(results)
    assert (ratio.key, ratio.baseline, ratio.concurrency) == ("a", "c", 16)
    assert ratio.rps == pytest.approx(0.2) and ratio.p50 == pytest.approx(5.0)
    assert ratio.cpu_per_request == pytest.approx(1.0)


def test_targets_state_met_missed_and_the_distance() -> None:
    results = [
        _m("a", 16, 400, p99_ms=20),
        _m("a_mf_replica", 16, 600),
        _m("c", 16, 1000, p99_ms=10),
        _m("a", 1, 10, p50_ms=1.2),
        _m("c", 1, 10, p50_ms=1.0),
        _m("d_infer", 16, 2000),
        _m("e", 16, 1000),
    ]
    home, latency, dag, cpu, batching, oip = assess_targets(results, budget_ms=150, dag_ms=0.3)
    assert home.met is False and "0.40x" in home.measured and "1.2x short" in home.measured
    assert "a_mf_replica" in home.best and "0.60x" in home.best
    assert latency.met is True and "1.2x" in latency.measured and "2.0x" in latency.measured
    assert dag.met is False and "0.300 ms" in dag.measured
    assert cpu.met is not None
    assert batching.met is None and "not measured" in batching.measured
    assert oip.met is True and "2.00x" in oip.measured
    assert assess_targets(results, budget_ms=150)[2].met is None  # no DAG profile


def test_batching_target_needs_speedup_budget_and_no_cost_at_c1() -> None:
    base = [_m("torch_unbatched", 64, 100), _m("torch_unbatched", 1, 50, p50_ms=2.0)]
    fast = [_m("torch_adaptive", 64, 400, p99_ms=100), _m("torch_adaptive", 1, 50, p50_ms=2.15)]
    assert assess_targets(base + fast, budget_ms=150)[4].met is True
    late = [_m("torch_adaptive", 64, 400, p99_ms=200), fast[1]]
    assert assess_targets(base + late, budget_ms=150)[4].met is False
    costly = [fast[0], _m("torch_adaptive", 1, 50, p50_ms=2.5)]
    assert assess_targets(base + costly, budget_ms=150)[4].met is False
    slow = [_m("torch_adaptive", 64, 250, p99_ms=100), fast[1]]
    assert assess_targets(base + slow, budget_ms=150)[4].met is False


def test_hand_written_findings_survive_a_rewrite() -> None:
    block = f"{FINDINGS_START}\nmy notes\n{FINDINGS_END}"
    assert keep_findings(f"# old\n\n{block}\n\ntail") == block
    fresh = keep_findings(None)
    assert fresh.startswith(FINDINGS_START) and fresh.endswith(FINDINGS_END)


def test_profile_samples_are_charged_to_the_innermost_frames_layer() -> None:
    collapsed = "\n".join(
        [
            "main (x.py:1);weighted_blend (blending/nodes.py:59) 6",
            "main (x.py:1);dumps (ray/cloudpickle/cloudpickle.py:1544) 2",
            "Thread.run (threading.py:982) 2",
        ]
    )
    summary = summarize(collapsed)
    assert summary.samples == 10
    assert summary.layers["blendserve: blending DAG and maths"] == pytest.approx(0.6)
    assert summary.layers["serialization: cloudpickle, pickle"] == pytest.approx(0.2)
    assert summary.layers[NATIVE] == pytest.approx(0.2)
    assert summary.top_functions[0] == ("weighted_blend (blending/nodes.py)", 0.6)
