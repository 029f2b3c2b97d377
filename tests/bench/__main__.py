"""``scripts/bench [--quick] [--out DIR] [--no-pin]``: measure the stack side by side, write JSON, markdown and PNG plots.

Every configuration runs ``rounds`` times (full: 3), interleaved: round *r*
runs the configurations in an order rotated by *r*, so none (the baseline
relay included) is always first or last. Scenarios: fan-out (daphne vs
uvicorn, SQLite vs PostgreSQL, the fan-out layer vs the core layer, the
baseline relay behind the same nginx hop), idle sockets (daphne and each of uvicorn's
WebSocket implementations; 10,000 held for 60 s on the default), and HTTP
latency idle vs during WebSocket storms at 80% of the default's saturation
and over it (split with and without the ASGI workers' lower CPU weight, and
one daphne serving everything). Results: ``DIR/bench.json``, ``DIR/bench.md``
(the same document as docs/benchmarks.md, from the JSON only), ``DIR/*.png``.

The run fails (exit 1) on a broken run, never on timings: a configuration
that did not start, failed handshakes, a fan-out without deliveries, sockets
dropped while held, HTTP errors.
"""

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from tests.bench import report, run
from tests.bench.report import completed, summary

CORE = "switchyard.layers.RedisChannelLayer"
DEFAULT = "daphne x2"  # what a deployment gets: defaults.env's 2 daphne workers, the fan-out layer, SQLite natively
POSTGRESQL = "daphne x2 on PostgreSQL"

# name -> keyword arguments of run.native_target (None: the baseline relay)
FANOUT_CONFIGS = {
    DEFAULT: {"server": "daphne", "workers": 2},
    POSTGRESQL: {"server": "daphne", "workers": 2, "database": "postgresql"},
    "daphne x2, core layer (the default before)": {"server": "daphne", "workers": 2, "layer": CORE},
    "uvicorn x2": {"server": "uvicorn", "workers": 2},
    "baseline relay": None,
}
CONNECTION_CONFIGS = {
    DEFAULT: {"server": "daphne", "workers": 2},
    "uvicorn x2 (websockets)": {"server": "uvicorn", "workers": 2},
    "uvicorn x2 (websockets-sansio)": {"server": "uvicorn", "workers": 2,
                                       "env": {"ASGI_UVICORN_WS": "websockets-sansio"}},
    "uvicorn x2 (wsproto)": {"server": "uvicorn", "workers": 2, "env": {"ASGI_UVICORN_WS": "wsproto"}},
}
ISOLATION_CONFIGS = {
    "split (default: ASGI_CPU_WEIGHT=25)": {"server": "daphne", "workers": 2},
    "split, no CPU priority (ASGI_CPU_WEIGHT=100)": {"server": "daphne", "workers": 2,
                                                     "env": {"ASGI_CPU_WEIGHT": "100"}},
    "one daphne serves everything": {"server": "daphne", "workers": 1, "single_process": True},
}

PLANS = {
    "quick": {
        "rounds": 1,
        "fanout": {"rooms": 10, "members": 10, "rates": [20, 80, 320, 1280], "seconds": 2, "processes": 1,
                   "configs": [DEFAULT, POSTGRESQL, "uvicorn x2", "baseline relay"]},
        "connections": {"count": 300, "default_count": 300, "hold_seconds": 5, "default_hold_seconds": 5, "processes": 1,
                        "configs": [DEFAULT]},
        "isolation": {"http_rate": 20, "seconds": 3, "rooms": 10, "members": 10, "processes": 1,
                      "configs": ["split (default: ASGI_CPU_WEIGHT=25)", "one daphne serves everything"]},
    },
    "full": {
        "rounds": 3,
        "fanout": {"rooms": 10, "members": 20, "rates": [50, 100, 200, 400, 800, 1600, 3200, 6400], "seconds": 3,
                   "processes": 2, "configs": list(FANOUT_CONFIGS)},
        # 10,000 (the target) on the default; the alternatives at 2,000 (connects run at ~150/s on one CPU).
        "connections": {"count": 2_000, "default_count": 10_000, "hold_seconds": 5, "default_hold_seconds": 60,
                        "processes": 2,
                        "configs": list(CONNECTION_CONFIGS)},
        "isolation": {"http_rate": 50, "seconds": 10, "rooms": 10, "members": 20, "processes": 2,
                      "configs": list(ISOLATION_CONFIGS)},
    },
}
STORMS = {"80% of saturation": 0.8, "2x saturation": 2.0}  # of the default's median fan-out saturation


def interleaved(configs, rounds):
    """Yield ``(round, name)``: every name ``rounds`` times, each round's order rotated by one."""
    for index in range(rounds):
        shift = index % len(configs)
        for name in configs[shift:] + configs[:shift]:
            yield index, name


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (CI's smoke test)")
    parser.add_argument("--out", default="var/bench", help="output directory (default var/bench)")
    parser.add_argument("--no-pin", action="store_true", help="let stack and load generators share every CPU")
    args = parser.parse_args(argv)
    plan_name = "quick" if args.quick else "full"
    plan = PLANS[plan_name]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpus = run.CpuPlan.of_this_machine(pin=not args.no_pin)
    os.sched_setaffinity(0, cpus.loadgen)
    started = time.monotonic()
    results = {"plan": plan_name, "rounds": plan["rounds"], "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "machine": run.machine(cpus), "default": DEFAULT,
               "stop_rule": {"delivered_min": run.DELIVERED_MIN, "p99_bound_ms": run.P99_BOUND_MS,
                             "grace_seconds": run.GRACE_SECONDS, "refine_steps": run.REFINE_STEPS},
               "plan_details": plan, "fanout": {}, "connections": {}, "isolation": {}, "problems": []}
    rounds = plan["rounds"]
    total = rounds * (len(plan["fanout"]["configs"]) + len(plan["connections"]["configs"])
                      + len(plan["isolation"]["configs"]))
    bar = tqdm(total=total, unit="run", dynamic_ncols=True)
    note = bar.write

    def save():  # after every run, so an interrupted run keeps what it measured
        (out / "bench.json").write_text(json.dumps(results, indent=2))

    def attempt(scenario, name, index, measure):
        bar.set_description(f"{scenario} {name} (round {index + 1})")
        try:
            result = measure()
        except Exception as exc:  # noqa: BLE001 - a configuration that did not run is a reported failure
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["round"] = index + 1
        results[scenario].setdefault(name, {"runs": []})["runs"].append(result)
        save()
        bar.update()

    fan = plan["fanout"]
    for index, name in interleaved(fan["configs"], rounds):
        def measure(name=name):
            config = FANOUT_CONFIGS[name]
            target = run.relay_target(cpus=cpus) if config is None else run.native_target(name, cpus=cpus, **config)
            with target as live:
                return run.fanout(live, fan["rooms"], fan["members"], fan["rates"], fan["seconds"],
                                  fan["processes"], note, cpus.loadgen)
        attempt("fanout", name, index, measure)
    for name, entry in results["fanout"].items():
        ok = completed(entry)
        entry["saturation_deliveries_per_s"] = summary([r["saturation_deliveries_per_s"] for r in ok])
        entry["p99_ms_at_half"] = summary([r["latency_ms"]["p99"] for r in ok])
        entry["p50_ms_at_half"] = summary([r["latency_ms"]["p50"] for r in ok])
        entry["cpu_s_per_1000_deliveries"] = summary([r["cpu_s_per_1000_deliveries"] for r in ok])

    con = plan["connections"]
    for index, name in interleaved(con["configs"], rounds):
        hold = con["default_hold_seconds"] if name == DEFAULT else con["hold_seconds"]
        count = con["default_count"] if name == DEFAULT else con["count"]

        def measure(name=name, hold=hold, count=count):
            with run.native_target(name, cpus=cpus, **CONNECTION_CONFIGS[name]) as live:
                return run.connections(live, count, hold, con["processes"], note, cpus.loadgen)
        attempt("connections", name, index, measure)
    for entry in results["connections"].values():
        ok = completed(entry)
        entry["kib_per_connection"] = summary([r["kib_per_connection"] for r in ok])
        entry["connect_per_s"] = summary([r["connect_per_s"] for r in ok])

    iso = plan["isolation"]
    saturation = (results["fanout"].get(DEFAULT, {}).get("saturation_deliveries_per_s") or {}).get("median")
    base_rate = (saturation or 0) / plan["fanout"]["members"] or 50.0  # messages/s
    storms = {label: base_rate * factor for label, factor in STORMS.items()}
    results["isolation_storms_messages_per_s"] = storms
    for index, name in interleaved(iso["configs"], rounds):
        def measure(name=name):
            with run.native_target(name, cpus=cpus, **ISOLATION_CONFIGS[name]) as live:
                return run.isolation(live, storms, iso["http_rate"], iso["seconds"], iso["rooms"], iso["members"],
                                     iso["processes"], note, cpus.loadgen)
        attempt("isolation", name, index, measure)
    for entry in results["isolation"].values():
        ok = completed(entry)
        entry["idle_p99_ms"] = summary([r["idle"]["p99"] for r in ok])
        entry["storms"] = {label: {"p99_ms": summary([r["storms"][label]["p99"] for r in ok]),
                                   "p99_ratio": summary([r["storms"][label]["p99_ratio"] for r in ok])}
                           for label in storms}
    bar.close()

    results["problems"] = problems(results)
    results["seconds"] = time.monotonic() - started
    results["machine"]["load_average_after"] = os.getloadavg()
    save()
    (out / "bench.md").write_text(report.document(results, plots_dir="."))
    report.plots(results, out)
    print(f"bench: {plan_name} run took {results['seconds']:.0f} s; results in {out}/bench.md, bench.json, *.png")
    if results["problems"]:
        print("bench: broken runs:\n  " + "\n  ".join(results["problems"]), file=sys.stderr)
        return 1
    return 0


def reasons(opened):
    """`` (REASON xN, ...)`` of a load generator's failed handshakes, when it named them."""
    named = opened.get("errors") or {}
    return " (" + ", ".join(f"{reason} x{n}" for reason, n in named.items()) + ")" if named else ""


def problems(results):
    """Return what makes the run broken (list of str): failures, never timings."""
    found = []
    for scenario in ("fanout", "connections", "isolation"):
        for name, entry in results[scenario].items():
            for r in entry["runs"]:
                where = f"{scenario} {name} round {r['round']}"
                if "error" in r:
                    found.append(f"{where}: did not run ({r['error']})")
                elif scenario == "fanout":
                    if r["sockets"]["failed"]:
                        found.append(f"{where}: {r['sockets']['failed']} handshakes failed{reasons(r['sockets'])}")
                    if not r["steps"] or not r["steps"][0]["delivered"]:
                        found.append(f"{where}: no deliveries in the first step")
                elif scenario == "connections":
                    if r["failed"]:
                        found.append(f"{where}: {r['failed']} handshakes failed{reasons(r)}")
                    if r["dropped"]:
                        found.append(f"{where}: {r['dropped']} sockets dropped while held")
                else:
                    errors = r["idle"]["errors"] + sum(s["errors"] for s in r["storms"].values())
                    if errors:
                        found.append(f"{where}: {errors} HTTP requests failed")
                    if r["sockets"]["failed"]:
                        found.append(f"{where}: {r['sockets']['failed']} storm handshakes failed")
    return found


if __name__ == "__main__":
    sys.exit(main())
