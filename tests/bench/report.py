"""docs/benchmarks.md and the plots, generated from a run's ``bench.json`` only.

``python -m tests.bench.report BENCH_JSON [--doc PATH]`` rewrites the document
(default: print it). Every figure and every verdict in it comes from the JSON;
targets are judged on the default configuration (``results["default"]``),
from the median of its runs. ``tests/bench/test_report.py`` checks that
docs/benchmarks.md is exactly what this module makes of
docs/benchmarks/bench.json.
"""

import argparse
import json
import statistics
from contextlib import contextmanager
from pathlib import Path

# Targets of the benchmark-trust and fan-out issues, on the default configuration.
TARGET_STORM_RATIO = 1.5  # HTTP storm p99 / idle p99, storm at <= 80% of saturation, split stack
TARGET_KIB_PER_CONNECTION = 40
TARGET_CONNECTIONS = 10_000
TARGET_HOLD_SECONDS = 60
TARGET_RELAY_SPREAD = 0.20
TARGET_BASELINE_RATIO = 0.5
TARGET_P99_MS = 50
TARGET_POSTGRESQL_RATIO = 0.8  # fan-out on PostgreSQL / on SQLite
RELAY = "baseline relay"
POSTGRESQL = "daphne x2 on PostgreSQL"
SPLIT = "split (default: ASGI_CPU_WEIGHT=25)"
SINGLE = "one daphne serves everything"
UNDER, OVER = "80% of saturation", "2x saturation"


def summary(values):
    """Median, min, max and spread ((max - min) / median) of a list of numbers (None when empty)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    median = statistics.median(values)
    return {"median": median, "min": min(values), "max": max(values), "runs": len(values),
            "spread": (max(values) - min(values)) / median if median else None}


def completed(entry):
    """The runs of a configuration's ``entry`` that ran (list of dicts; failed ones carry ``"error"``)."""
    return [r for r in entry["runs"] if "error" not in r]


def _fmt(value, digits=1):
    return "—" if value is None else f"{value:,.{digits}f}"


def _spread(summary, digits=1, scale=1.0):
    """``median (min–max)`` of a summary dict, or — ."""
    if not summary:
        return "—"
    return (f"{summary['median'] * scale:,.{digits}f} ({summary['min'] * scale:,.{digits}f}–"
            f"{summary['max'] * scale:,.{digits}f})")


def _median(summary):
    return summary["median"] if summary else None


def _yes(flag):
    return "**met**" if flag else "**not met**"


METHOD = """\
`scripts/bench` measures the stack side by side, in one run, on real
processes: native stacks (Redis, gunicorn, ASGI workers, nginx, started by
`deploy.native.NativeStack`) driven **through nginx** by separate
load-generator processes (the `websockets` library). The baseline relay
(`tests/bench/relay.py`: the chat protocol with no Django, the `websockets`
library and Redis pub/sub, frames with the chat message's keys and sizes)
sits behind an nginx rendered from the same templates. Machines are noisy:
every configuration runs several times, interleaved (each round's order
rotated, the relay included), and the tables give the median with the
range of the runs; ratios compare configurations of the same run.

```sh
scripts/bench --quick        # CI's smoke test: fails on broken runs, never on timings
scripts/bench                # the full run (about 35 minutes)
scripts/bench --out DIR      # default var/bench: bench.json, bench.md, *.png
python -m tests.bench.report DIR/bench.json --doc docs/benchmarks.md   # this page, from the JSON only
```

How each figure is taken (`tests/bench/run.py`, `loadgen.py`):

- **Fan-out**: rooms × members sockets; one publisher sends on a fixed
  schedule (open loop) at increasing rates (a doubling ladder, then a bisection between the
  last rate that passed and the first that failed). A step counts the deliveries of
  the messages *scheduled* inside it, until a grace period after its last
  send; latency runs from the scheduled send time, so a stalled server
  cannot hide behind a stalled client (no coordinated omission); every
  latency goes into an HdrHistogram (`hdrhistogram`, no sample cap), merged
  across load-generator processes. Late (over 1 s) and lost deliveries are
  counted. One stop rule for every configuration (below); saturation is the
  deliveries/s of the fastest step that passed; latency is then measured at
  half that rate.
- **Idle sockets**: sockets opened through nginx over 100 rooms, the ASGI
  workers' RSS growth per socket, then held (the default for 60 s) while
  every load generator counts sockets the server closed.
- **HTTP isolation**: a signed-in room page (gunicorn renders it; in the
  one-process configuration daphne does) requested on a fixed schedule,
  recorded with HdrHistogram's coordinated-omission correction, idle and
  during WebSocket storms at 80% of the default's fan-out saturation and at
  twice it (the same offered storm for every configuration). The split
  stack runs with the ASGI workers' CPU weight at its default
  (`ASGI_CPU_WEIGHT=25`: nice 6 natively, `CPUWeight=` under systemd,
  `cpu_shares` in compose) and at 100 (no priority).
- For the benchmark the app's own limits are lifted (`CHAT_RATE_LIMIT_*`,
  `CHAT_MAX_SOCKETS_PER_USER`, nginx's per-address limits): one user at one
  address drives it. The database is the native default, SQLite, except
  in the configuration "on PostgreSQL": a PostgreSQL server of its own
  (`tests/postgres.py`) on the stack's CPU with PostgreSQL's defaults, so
  every commit waits for its WAL flush (`synchronous_commit=on`).
- **Where the CPU goes**: each step meters the stack's processes by role
  (psutil), and the ASGI workers by thread: the event loop, and the others
  (mostly the database thread of `database_sync_to_async`).
"""


def metadata(results):
    m = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in m["packages"].items() if version)
    plan = results["plan_details"]
    stop = results["stop_rule"]
    return [
        "## The run", "",
        f"- Plan: **{results['plan']}**, {results['rounds']} round(s), started {results['started']}, "
        f"{results['seconds']:.0f} s.",
        f"- Commit `{(m['commit'] or '?')[:12]}`{' (with uncommitted changes)' if m['dirty'] else ''}.",
        f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['platform']}, "
        f"Python {m['python']}; {m['nginx']}; {m['redis']}.",
        f"- Load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in m['load_average_before'])}; "
        f"after: {', '.join(f'{v:.2f}' for v in m.get('load_average_after', []))}.",
        f"- CPUs: {m['pinning']}.",
        f"- Packages: {packages}.",
        f"- Stop rule: a step passes with ≥ {stop['delivered_min']:.0%} of its expected deliveries and "
        f"p99 ≤ {stop['p99_bound_ms']} ms (grace {stop['grace_seconds']:.0f} s after the last send).",
        f"- Fan-out: {plan['fanout']['rooms']} rooms × {plan['fanout']['members']} members, steps of "
        f"{plan['fanout']['seconds']} s at {', '.join(map(str, plan['fanout']['rates']))} messages/s, "
        f"then {results['stop_rule'].get('refine_steps', 0)} bisection steps between the last rate that passed "
        f"and the first that failed; {plan['fanout']['processes']} load-generator process(es).",
        f"- Idle sockets: {plan['connections']['default_count']:,} held {plan['connections']['default_hold_seconds']} s "
        f"(default); {plan['connections']['count']:,} held {plan['connections']['hold_seconds']} s (the others).",
        f"- Isolation: {plan['isolation']['http_rate']} requests/s for {plan['isolation']['seconds']} s per phase; "
        f"storms: " + ", ".join(f"{label} = {rate:,.0f} messages/s to {plan['isolation']['rooms']} × "
                                  f"{plan['isolation']['members']} sockets"
                                  for label, rate in results["isolation_storms_messages_per_s"].items()) + ".",
        "",
    ]


def relay_ratios(results):
    """Per round: the default's saturation ÷ the relay's in the same round (list of float)."""
    fanout = results["fanout"]
    by_round = {}
    for name in (results["default"], RELAY):
        for r in fanout.get(name, {}).get("runs", []):
            if "error" not in r:
                by_round.setdefault(r["round"], {})[name] = r["saturation_deliveries_per_s"]
    return [v[results["default"]] / v[RELAY] for v in by_round.values()
            if len(v) == 2 and v[RELAY]]


ROLES = ("asgi", "web", "nginx", "redis", "database")


def cpu_per_delivery(half):
    """Return ``{part: µs of CPU per delivery}`` of one half-saturation step, or None for an older bench.json."""
    if not half.get("delivered") or "cpu_s_by_role" not in half:
        return None
    parts = {"event loop": half["asgi_cpu_s_by_thread"]["event loop"],
             "other threads": half["asgi_cpu_s_by_thread"]["other threads"],
             **{role: half["cpu_s_by_role"].get(role, 0.0) for role in ROLES if role != "asgi"}}
    return {part: 1e6 * seconds / half["delivered"] for part, seconds in parts.items()}


def cpu_section(results):
    """The fan-out's CPU per delivery at half saturation, by process role and ASGI thread (median of runs)."""
    rows = []
    for name, entry in results["fanout"].items():
        runs = [cpu_per_delivery(r["half"]) for r in completed(entry)]
        runs = [r for r in runs if r]
        if runs:
            rows.append((name, {part: statistics.median(r[part] for r in runs) for part in runs[0]}))
    if not rows:
        return []
    parts = list(rows[0][1])
    lines = ["### Where the CPU goes", "",
             "Stack CPU µs per delivery at half saturation, median of the runs: the ASGI workers' event loop "
             "and their other threads (the database thread), then the other processes (the relay's workers count "
             "as the event loop).", "",
             "| configuration | " + " | ".join(parts) + " | total |", "|---|" + "---|" * (len(parts) + 1)]
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(f"{row[part]:.1f}" for part in parts)
                     + f" | {sum(row.values()):.1f} |")
    return lines + [""]


def fanout_section(results):
    lines = ["## Fan-out", "",
             "Median (range) over the runs. Latency at half of each configuration's own saturation.", "",
             "| configuration | runs | deliveries/s at saturation | × relay (same rounds) | p50 ms at half | "
             "p99 ms at half | lost / late at half | stack CPU s / 1,000 deliveries |",
             "|---|---|---|---|---|---|---|---|"]
    fanout = results["fanout"]
    relay_by_round = {r["round"]: r["saturation_deliveries_per_s"] for r in fanout.get(RELAY, {}).get("runs", [])
                      if "error" not in r}
    for name, entry in fanout.items():
        ok = completed(entry)
        ratio = summary([r["saturation_deliveries_per_s"] / relay_by_round[r["round"]] for r in ok
                         if relay_by_round.get(r["round"])])
        lost = sum(r["half"]["lost"] for r in ok)
        late = sum(r["half"]["late"] for r in ok)
        above = "≥ " if any(r.get("saturation_above_ladder") for r in ok) else ""
        lines.append(f"| {name} | {len(ok)} of {len(entry['runs'])} | {above}{_spread(entry['saturation_deliveries_per_s'], 0)} | "
                     f"{_spread(ratio, 2)} | {_spread(entry['p50_ms_at_half'])} | {_spread(entry['p99_ms_at_half'])} | "
                     f"{lost} / {late} | {_spread(entry['cpu_s_per_1000_deliveries'], 3)} |")
    shares = [s["loadgen_cpu_share"] for e in fanout.values() for r in e["runs"] if "error" not in r for s in r["steps"]]
    if shares:
        lines += ["", f"The load generators used at most {max(shares):.0%} of their CPU in any step "
                      "(100% would make them the bottleneck)."]
    lines += ["", "≥: every step of a run passed, the saturation is above the ladder's top (a lower bound)."]
    lines += ["", "![delivered vs offered](benchmarks/fanout.png)", "![p99 vs offered](benchmarks/latency.png)", ""]
    return lines + cpu_section(results)


def connections_section(results):
    lines = ["## Idle sockets", "",
             "| configuration | runs | opened (failed) per run | KiB per socket per worker | connects/s | "
             "held s | open after hold | dropped |", "|---|---|---|---|---|---|---|---|"]
    for name, entry in results["connections"].items():
        ok = completed(entry)
        opened = ", ".join(f"{r['opened']:,} ({r['failed']})" for r in ok) or "—"
        held = ", ".join(f"{r['open_after_hold']:,}" for r in ok) or "—"
        lines.append(f"| {name} | {len(ok)} of {len(entry['runs'])} | {opened} | {_spread(entry['kib_per_connection'])} | "
                     f"{_spread(entry['connect_per_s'], 0)} | {', '.join(str(r['hold_seconds']) for r in ok) or '—'} | "
                     f"{held} | "
                     f"{sum(r['dropped'] for r in ok)} |")
    lines += ["", "![memory per idle socket](benchmarks/connections.png)", ""]
    return lines


def isolation_section(results):
    lines = ["## HTTP isolation", "",
             "HTTP p99 of a page, idle and during each storm; the ratio is storm p99 ÷ idle p99 of the same run.", "",
             "| configuration | runs | idle p99 ms | " + " | ".join(f"{label}: p99 ms | {label}: ratio"
                                                            for label in results["isolation_storms_messages_per_s"])
             + " |", "|---|---|---|" + "---|---|" * len(results["isolation_storms_messages_per_s"])]
    for name, entry in results["isolation"].items():
        ok = completed(entry)
        cells = []
        for label in results["isolation_storms_messages_per_s"]:
            storm = entry["storms"][label]
            cells += [_spread(storm["p99_ms"]), _spread(storm["p99_ratio"], 2)]
        lines.append(f"| {name} | {len(ok)} of {len(entry['runs'])} | {_spread(entry['idle_p99_ms'])} | "
                     + " | ".join(cells) + " |")
    delivered = [s["storm_delivered_ratio"] for e in results["isolation"].values() for r in e["runs"]
                 if "error" not in r for s in r["storms"].values()]
    if delivered:
        lines += ["", f"Share of each storm's deliveries that arrived: {min(delivered):.1%}–{max(delivered):.1%}."]
    lines += ["", "![HTTP latency idle vs storm](benchmarks/isolation.png)", ""]
    return lines


def _socket_counts(entry):
    """``"2,000"`` or ``"2,000, 10,000"``: the sockets each completed run of a connections entry opened."""
    return ", ".join(f"{n:,}" for n in sorted({r["opened"] for r in completed(entry)}))


def _leanest(results):
    """Name the alternative with the lowest median KiB per idle socket (str), from the idle-socket table."""
    medians = {name: _median(entry["kib_per_connection"]) for name, entry in results["connections"].items()
               if name != results["default"]}
    medians = {name: kib for name, kib in medians.items() if kib is not None}
    if not medians:
        return "no alternative was measured"
    name = min(medians, key=medians.get)
    leaner = "" if medians[name] < _median(results["connections"][results["default"]]["kib_per_connection"]) \
        else ", no leaner than the default"
    return (f"the leanest alternative measured, {name}, holds {medians[name]:.1f} KiB at "
            f"{_socket_counts(results['connections'][name])} sockets{leaner}")


def targets(results):
    """Return ``[(target, measured, met: bool, why_not)]`` judged on the default configuration."""
    found = []
    iso = results["isolation"]
    split, single = iso.get(SPLIT), iso.get(SINGLE)
    if split and single:
        s_under, o_under = _median(split["storms"][UNDER]["p99_ratio"]), _median(single["storms"][UNDER]["p99_ratio"])
        if s_under is not None and o_under is not None:
            found.append((f"HTTP storm p99 ÷ idle p99, split, storm at {UNDER}: ≤ {TARGET_STORM_RATIO}× and below "
                          "one daphne's", f"{_spread(split['storms'][UNDER]['p99_ratio'], 2)}× against one daphne's "
                          f"{_spread(single['storms'][UNDER]['p99_ratio'], 2)}×",
                          s_under <= TARGET_STORM_RATIO and s_under < o_under,
                          "the storm, Redis, nginx and gunicorn share the stack's CPU; the CPU weight orders who "
                          "runs first, it does not add cycles"))
        s_over, o_over = _median(split["storms"][OVER]["p99_ratio"]), _median(single["storms"][OVER]["p99_ratio"])
        if s_over is not None and o_over is not None:
            found.append((f"the same at {OVER}: split below one daphne's", f"{_spread(split['storms'][OVER]['p99_ratio'], 2)}× "
                          f"against {_spread(single['storms'][OVER]['p99_ratio'], 2)}×", s_over < o_over,
                          "over saturation every process of the stack is runnable all the time"))
    con = results["connections"].get(results["default"])
    if con:
        ok = completed(con)
        kib = _median(con["kib_per_connection"])
        if kib is not None:
            found.append((f"KiB per idle socket at {TARGET_CONNECTIONS:,}: ≤ {TARGET_KIB_PER_CONNECTION}",
                          f"{_spread(con['kib_per_connection'])} KiB at {_socket_counts(con)} sockets", kib <= TARGET_KIB_PER_CONNECTION,
                          "most of it is daphne/Twisted/autobahn, asyncio and Channels state per socket "
                          f"(see benchmarks-profile.md); {_leanest(results)}; hypercorn was not measured: it does not fit "
                          "the drain contract (0.18 stops listening and waits out its graceful timeout without "
                          "closing WebSockets, then drops them: 1006, not 1012), and its WebSocket code is wsproto"))
        held = all(r["opened"] >= TARGET_CONNECTIONS and not r["failed"] and not r["dropped"]
                   and r["hold_seconds"] >= TARGET_HOLD_SECONDS for r in ok) and bool(ok)
        found.append((f"{TARGET_CONNECTIONS:,} sockets through nginx, 0 errors, held ≥ {TARGET_HOLD_SECONDS} s with "
                      "drops detected", ", ".join(f"{r['opened']:,} opened, {r['failed']} failed, {r['dropped']} "
                                                  f"dropped in {r['hold_seconds']} s" for r in ok) or "no run",
                      held, "see the idle-socket table"))
    relay = results["fanout"].get(RELAY)
    if relay and relay.get("saturation_deliveries_per_s"):
        spread = relay["saturation_deliveries_per_s"]["spread"]
        found.append((f"spread of the relay baseline between runs: ≤ {TARGET_RELAY_SPREAD:.0%}",
                      f"{spread:.0%} ({_spread(relay['saturation_deliveries_per_s'], 0)} deliveries/s)",
                      spread is not None and spread <= TARGET_RELAY_SPREAD,
                      "the relay shares the machine with everything else that runs; see the runs in bench.json"))
    ratios = summary(relay_ratios(results))
    if ratios:
        found.append((f"fan-out ÷ relay (same round, same nginx hop): ≥ {TARGET_BASELINE_RATIO}× (the fan-out issue)",
                      f"{_spread(ratios, 2)}×", ratios["median"] >= TARGET_BASELINE_RATIO, _relay_gap(results)))
    postgresql = summary(ratios_by_round(results, POSTGRESQL, results["default"]))
    if postgresql:
        found.append((f"fan-out on PostgreSQL ÷ on SQLite (same round): ≥ {TARGET_POSTGRESQL_RATIO}× (the fan-out issue)",
                      f"{_spread(postgresql, 2)}×", postgresql["median"] >= TARGET_POSTGRESQL_RATIO,
                      _postgresql_gap(results)))
    for name, database in ((results["default"], "SQLite"), (POSTGRESQL, "PostgreSQL")):
        entry = results["fanout"].get(name)
        if entry and entry.get("p99_ms_at_half") and entry["p99_ms_at_half"]["median"] is not None:
            p99 = entry["p99_ms_at_half"]
            found.append((f"p99 at half saturation ≤ {TARGET_P99_MS} ms, {database} (the fan-out issue)",
                          f"{_spread(p99)} ms", p99["median"] <= TARGET_P99_MS, "scheduling on shared cores"))
    return found


def ratios_by_round(results, name, base):
    """Per round: ``name``'s fan-out saturation ÷ ``base``'s in the same round (list of float)."""
    by_round = {}
    for which in (name, base):
        for r in results["fanout"].get(which, {}).get("runs", []):
            if "error" not in r:
                by_round.setdefault(r["round"], {})[which] = r["saturation_deliveries_per_s"]
    return [v[name] / v[base] for v in by_round.values() if len(v) == 2 and v[base]]


def _median_costs(results, name):
    """Median CPU µs per delivery by part (dict) of ``name``'s half-saturation steps, or None."""
    runs = [cpu_per_delivery(r["half"]) for r in completed(results["fanout"].get(name, {"runs": []}))]
    runs = [r for r in runs if r]
    return {part: statistics.median(r[part] for r in runs) for part in runs[0]} if runs else None


def _postgresql_gap(results):
    """Say where PostgreSQL's fan-out falls short of SQLite's (str), from the CPU per delivery at half."""
    sqlite, postgresql = _median_costs(results, results["default"]), _median_costs(results, POSTGRESQL)
    if not sqlite or not postgresql:
        return "see the CPU table"
    more = {part: postgresql[part] - sqlite[part] for part in sqlite}
    return (f"on one CPU for the whole stack, PostgreSQL costs {sum(postgresql.values()):.0f} µs of CPU per delivery "
            f"against SQLite's {sum(sqlite.values()):.0f}: the server itself {postgresql['database']:.0f} µs "
            f"(SQLite runs inside the workers), the workers' database thread {more['other threads']:+.0f} µs "
            f"(a network round trip per statement, psycopg), their event loop {more['event loop']:+.0f} µs; every "
            "commit waits for its WAL flush (synchronous_commit=on), group commit shares one among the messages "
            "that arrive together")


def _relay_gap(results):
    """Say where the default's fan-out falls short of the relay (str), from the CPU per delivery at half."""
    costs = {}
    for name in (results["default"], RELAY):
        runs = [cpu_per_delivery(r["half"]) for r in completed(results["fanout"].get(name, {"runs": []}))]
        runs = [r for r in runs if r]
        if runs:
            costs[name] = {part: statistics.median(r[part] for r in runs) for part in runs[0]}
    if len(costs) < 2:
        return "see the fan-out table"
    ours, relay = costs[results["default"]], costs[RELAY]
    members = results["plan_details"]["fanout"]["members"]
    return (f"the stack spends {sum(ours.values()):.0f} µs of CPU per delivery against the relay's "
            f"{sum(relay.values()):.0f}: the ASGI workers' event loop {ours['event loop']:.0f} µs (relay "
            f"{relay['event loop']:.0f}), their database thread {ours['other threads']:.0f} µs (the relay stores "
            f"nothing), nginx {ours['nginx']:.0f} µs (relay {relay['nginx']:.0f}). Per message, for the "
            f"{members} sockets of a room, that is {members * (sum(ours.values()) - sum(relay.values())) / 1000:.1f} ms "
            "more: storing it (a transaction), the per-user rate limit in Redis, the consumer's dispatch of the "
            "frame it came in; the per-socket path is one pre-encoded frame write (see the CPU table)")


def document(results, plots_dir="benchmarks"):
    """Return docs/benchmarks.md (str) for ``results`` (bench.json's dict); plot links point into ``plots_dir``."""
    lines = ["# Benchmarks", "",
             "<!-- Generated by `python -m tests.bench.report docs/benchmarks/bench.json --doc docs/benchmarks.md`"
             " from the JSON only; edit tests/bench/report.py, not this file. -->", "", METHOD]
    lines += metadata(results)
    lines += fanout_section(results)
    lines += connections_section(results)
    lines += isolation_section(results)
    lines += ["## Targets", "", "Judged on the default configuration "
              f"(**{results['default']}**: the fan-out layer `switchyard.fanout`, SQLite, `ASGI_CPU_WEIGHT=25`), "
              "median of its runs.", "",
              "| target | measured: median (range) | verdict | where a miss comes from |", "|---|---|---|---|"]
    for target, measured, met, why in targets(results):
        lines.append(f"| {target} | {measured} | {_yes(met)} | {'' if met else why} |")
    if results["problems"]:
        lines += ["", "## Broken runs", ""] + [f"- {problem}" for problem in results["problems"]]
    lines += ["", "Raw data: [benchmarks/bench.json](benchmarks/bench.json). Profiles (py-spy, tracemalloc) and "
              "earlier one-off measurements: [benchmarks-profile.md](benchmarks-profile.md).", ""]
    text = "\n".join(lines)
    return text.replace("](benchmarks/", f"]({plots_dir}/") if plots_dir != "benchmarks" else text


@contextmanager
def _figure(plt, path, title):
    """Yield the axis of a new 7x4 in figure; on exit title it, save it to ``path`` (PNG) and close it."""
    figure, axis = plt.subplots(figsize=(7, 4))
    try:
        yield axis
        axis.set_title(title)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


def plots(results, out):
    """Write ``fanout.png`` (delivered vs offered), ``latency.png`` (p99 vs offered), ``connections.png``
    (KiB per idle socket) and ``isolation.png`` (HTTP p99 idle vs storms) into ``out``; every run drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for filename, title, value, ylabel in (
            ("fanout.png", "Fan-out: delivered vs offered (every run)", lambda s: s["delivered_per_s"],
             "delivered deliveries/s"),
            ("latency.png", "Fan-out: p99 vs offered load (every run)", lambda s: s["latency_ms"]["p99"], "p99 ms")):
        with _figure(plt, out / filename, title) as axis:
            for colour, (name, entry) in zip(colours, results["fanout"].items()):
                for index, r in enumerate(x for x in entry["runs"] if "error" not in x):
                    axis.plot([s["offered_deliveries_per_s"] for s in r["steps"]], [value(s) or 0 for s in r["steps"]],
                              marker="o", color=colour, alpha=0.7, label=name if index == 0 else None)
            axis.set_xlabel("offered deliveries/s")
            axis.set_ylabel(ylabel)
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.legend(fontsize=7)

    def bars(axis, names, groups):
        """groups: [(label, [summary per name])]: median bars with min–max whiskers."""
        width = 0.8 / max(1, len(groups))
        for offset, (label, values) in enumerate(groups):
            xs = [i + offset * width for i in range(len(names))]
            medians = [v["median"] if v else 0 for v in values]
            errors = [[(v["median"] - v["min"]) if v else 0 for v in values],
                      [(v["max"] - v["median"]) if v else 0 for v in values]]
            axis.bar(xs, medians, width=width, yerr=errors, capsize=3, label=label)
        axis.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(names))], names, rotation=12,
                        ha="right", fontsize=7)

    with _figure(plt, out / "connections.png", "Memory per idle socket (median, range)") as axis:
        names = list(results["connections"])
        bars(axis, names, [("KiB per socket", [results["connections"][n]["kib_per_connection"] for n in names])])
        axis.axhline(TARGET_KIB_PER_CONNECTION, linestyle="--", color="grey", label="target")
        axis.set_ylabel("KiB per socket per worker")
        axis.legend(fontsize=8)

    with _figure(plt, out / "isolation.png", "HTTP p99, idle vs WebSocket storms (median, range)") as axis:
        names = list(results["isolation"])
        groups = [("idle", [results["isolation"][n]["idle_p99_ms"] for n in names])]
        groups += [(label, [results["isolation"][n]["storms"][label]["p99_ms"] for n in names])
                   for label in results["isolation_storms_messages_per_s"]]
        bars(axis, names, groups)
        axis.set_ylabel("HTTP p99 ms")
        axis.set_yscale("log")
        axis.legend(fontsize=8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", type=Path)
    parser.add_argument("--doc", type=Path, help="write the document here (and the plots beside bench.json)")
    args = parser.parse_args(argv)
    results = json.loads(args.bench_json.read_text())
    if args.doc:
        args.doc.write_text(document(results))
        plots(results, args.bench_json.parent)
    else:
        print(document(results), end="")


if __name__ == "__main__":
    main()
