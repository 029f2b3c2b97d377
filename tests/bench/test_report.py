"""The benchmark harness' own rules, and docs/benchmarks.md generated from its bench.json only."""

import json
from pathlib import Path

from tests.bench import report, run
from tests.bench.__main__ import interleaved, problems
from tests.bench.report import summary
from tests.bench.loadgen import new_histogram

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def test_docs_benchmarks_is_generated_from_its_bench_json():
    """Every figure and verdict in docs/benchmarks.md is what report.document makes of docs/benchmarks/bench.json."""
    results = json.loads((DOCS / "benchmarks" / "bench.json").read_text())
    assert results["plan"] == "full" and results["rounds"] >= 3
    expected = report.document(results)
    assert (DOCS / "benchmarks.md").read_text() == expected, (
        "docs/benchmarks.md differs from its bench.json: run "
        "`python -m tests.bench.report docs/benchmarks/bench.json --doc docs/benchmarks.md`")


def test_rounds_are_interleaved_and_rotated():
    """Every configuration runs once per round; no configuration (the relay included) is always first or last."""
    names = ["default", "uvicorn", "pubsub", "relay"]
    order = list(interleaved(names, 3))
    assert len(order) == 12 and all(sum(1 for _, n in order if n == name) == 3 for name in names)
    rounds = [[n for r, n in order if r == index] for index in range(3)]
    assert len({r[0] for r in rounds}) == 3 and len({r[-1] for r in rounds}) == 3


def test_summary_gives_median_range_and_spread():
    assert summary([10, 12, 11]) == {"median": 11, "min": 10, "max": 12, "runs": 3, "spread": 2 / 11}
    assert summary([None]) is None and summary([]) is None


def test_one_stop_rule_for_every_configuration():
    def step(ratio, p99):
        return {"ratio": ratio, "latency_ms": {"p99": p99}}

    assert run.step_passes(step(1.0, run.P99_BOUND_MS))
    assert not run.step_passes(step(run.DELIVERED_MIN - 0.001, 10))
    assert not run.step_passes(step(1.0, run.P99_BOUND_MS + 1))
    assert not run.step_passes(step(1.0, None))


def test_histograms_keep_every_sample_and_merge_across_processes():
    """No sample cap: 100,000 latencies in two histograms, merged through their encoded form (as the pipes carry them)."""
    first, second = new_histogram(), new_histogram()
    for value in range(1, 50_001):
        first.record_value(value)  # 1 µs .. 50 ms
    for _ in range(50_000):
        second.record_value(1_000_000)  # 1 s: the slow half
    merged = new_histogram()
    merged.decode_and_add(first.encode())
    merged.decode_and_add(second.encode())
    assert merged.get_total_count() == 100_000
    quantiles = run.quantiles_ms(merged)
    assert 24 <= quantiles["p50"] <= 51 and 995 <= quantiles["p99"] <= 1005
    assert run.quantiles_ms(new_histogram())["p99"] is None


def test_broken_runs_are_reported_timings_are_not():
    ok_step = {"delivered": 10}
    results = {
        "fanout": {"a": {"runs": [{"round": 1, "error": "StackError: nginx did not start"},
                                  {"round": 2, "sockets": {"failed": 3}, "steps": [ok_step]},
                                  {"round": 3, "sockets": {"failed": 0}, "steps": [{"delivered": 0}]},
                                  # slow, but not broken:
                                  {"round": 4, "sockets": {"failed": 0}, "steps": [ok_step],
                                   "latency_ms": {"p99": 99_999}}]}},
        "connections": {"b": {"runs": [{"round": 1, "failed": 0, "dropped": 2}]}},
        "isolation": {"c": {"runs": [{"round": 1, "idle": {"errors": 1}, "storms": {"x": {"errors": 0}},
                                      "sockets": {"failed": 0}}]}},
    }
    found = problems(results)
    assert found == ["fanout a round 1: did not run (StackError: nginx did not start)",
                     "fanout a round 2: 3 handshakes failed",
                     "fanout a round 3: no deliveries in the first step",
                     "connections b round 1: 2 sockets dropped while held",
                     "isolation c round 1: 1 HTTP requests failed"]


def test_cpu_plan_keeps_load_generators_off_the_stacks_cpus():
    plan = run.CpuPlan.of_this_machine()
    if plan.pinned:
        assert plan.stack.isdisjoint(plan.loadgen) and plan.stack | plan.loadgen
    else:
        assert plan.stack == plan.loadgen
    assert run.CpuPlan.of_this_machine(pin=False).pinned is False


def _fanout_run(round_, saturation, loop_s, other_s, nginx_s, delivered=10_000, database_s=0.0):
    half = {"delivered": delivered, "lost": 0, "late": 0,
            "cpu_s_by_role": {"asgi": loop_s + other_s, "web": 0.0, "nginx": nginx_s, "redis": 0.1,
                              "database": database_s},
            "asgi_cpu_s_by_thread": {"event loop": loop_s, "other threads": other_s}}
    return {"round": round_, "saturation_deliveries_per_s": saturation, "half": half,
            "latency_ms": {"p50": 5.0, "p99": 20.0}, "steps": []}


def test_fanout_targets_compare_rounds_and_say_where_the_cpu_goes():
    """PostgreSQL ÷ SQLite and default ÷ relay are taken round by round; the relay's miss is explained in µs."""
    default, postgresql = "daphne x2", report.POSTGRESQL
    fanout = {
        default: {"runs": [_fanout_run(1, 10_000, 0.6, 0.3, 0.2), _fanout_run(2, 12_000, 0.6, 0.3, 0.2)]},
        postgresql: {"runs": [_fanout_run(1, 9_000, 0.6, 0.4, 0.2, database_s=0.2),
                              _fanout_run(2, 6_000, 0.6, 0.4, 0.2, database_s=0.2)]},
        report.RELAY: {"runs": [_fanout_run(1, 40_000, 0.2, 0.0, 0.15), _fanout_run(2, 30_000, 0.2, 0.0, 0.15)]},
    }
    for entry in fanout.values():
        entry["p99_ms_at_half"] = summary([r["latency_ms"]["p99"] for r in entry["runs"]])
        entry["saturation_deliveries_per_s"] = summary([r["saturation_deliveries_per_s"] for r in entry["runs"]])
    results = {"default": default, "fanout": fanout, "isolation": {}, "connections": {},
               "plan_details": {"fanout": {"members": 20}}}
    assert report.ratios_by_round(results, postgresql, default) == [0.9, 0.5]
    found = {target: (measured, met, why) for target, measured, met, why in report.targets(results)}
    relay = next(v for k, v in found.items() if k.startswith("fan-out ÷ relay"))
    assert relay[:2] == ("0.33 (0.25–0.40)×", False)
    # 1e6 µs × (0.6 + 0.3 + 0.2 + 0.1) / 10,000 deliveries = 120 µs against the relay's 45.
    assert "120 µs of CPU per delivery against the relay's 45" in relay[2] and "database thread 30 µs" in relay[2]
    pg = next(v for k, v in found.items() if k.startswith("fan-out on PostgreSQL"))
    assert pg[:2] == ("0.70 (0.50–0.90)×", False)
    assert "PostgreSQL costs 150 µs of CPU per delivery against SQLite's 120" in pg[2]
    assert "the server itself 20 µs" in pg[2] and "database thread +10 µs" in pg[2]
    assert sum(1 for k in found if k.startswith("p99 at half saturation")) == 2
    rows = report.cpu_section(results)
    assert any(row.startswith(f"| {postgresql} | 60.0 | 40.0 | 0.0 | 20.0 | 10.0 | 20.0 | 150.0 |") for row in rows), rows
