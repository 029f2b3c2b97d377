"""Turn a benchmark run (``bench.json``'s dict) into a markdown report and PNG plots (matplotlib)."""

from contextlib import contextmanager

# Targets of the issue "Benchmarks", on this 2-core machine.
TARGET_CONNECTIONS = 10_000
TARGET_KIB_PER_CONNECTION = 40
TARGET_BASELINE_RATIO = 0.5
TARGET_P99_MS = 50
TARGET_STORM_RATIO = 1.5


def _fmt(value, digits=1):
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown(results):
    """Return the report (str): one table per scenario, ratios to the baseline, targets met or missed."""
    lines = [f"Run: {results['plan']}, {results['started']}, {results['seconds']:.0f} s, on {results['machine']}.", ""]
    fanout = results["fanout"]
    baseline = fanout.get("baseline relay", {}).get("saturation_deliveries_per_s") or None
    lines += ["### Fan-out", "",
              "| configuration | deliveries/s at saturation | × baseline | p50 ms | p95 ms | p99 ms (at half) | CPU s / 1,000 deliveries |",
              "|---|---|---|---|---|---|---|"]
    for name, result in fanout.items():
        ratio = result["saturation_deliveries_per_s"] / baseline if baseline else None
        latency = result["latency_ms"]
        lines.append(f"| {name} | {_fmt(result['saturation_deliveries_per_s'], 0)} | {_fmt(ratio, 2)} | "
                     f"{_fmt(latency['p50'])} | {_fmt(latency['p95'])} | {_fmt(latency['p99'])} | "
                     f"{_fmt(result['cpu_s_per_1000_deliveries'], 3)} |")
    lines += ["", "### Idle connections", "",
              "| configuration | sockets open | failed | KiB per connection per worker | connects/s |", "|---|---|---|---|---|"]
    for name, result in results["connections"].items():
        for step in result["steps"]:
            lines.append(f"| {name} | {step['opened']:,} | {step['failed']} | {_fmt(step['kib_per_connection'])} | "
                         f"{_fmt(step['connect_per_s'], 0)} |")
    lines += ["", "### HTTP isolation (a gunicorn page, idle vs during a WebSocket storm)", "",
              "| configuration | idle p50 ms | idle p99 ms | storm p50 ms | storm p99 ms | storm p99 / idle p99 |",
              "|---|---|---|---|---|---|"]
    for name, result in results["isolation"].items():
        lines.append(f"| {name} | {_fmt(result['idle']['p50_ms'])} | {_fmt(result['idle']['p99_ms'])} | "
                     f"{_fmt(result['storm']['p50_ms'])} | {_fmt(result['storm']['p99_ms'])} | "
                     f"{_fmt(result['p99_ratio'], 2)} |")
    lines += ["", "### Targets", "", "| target | measured | met |", "|---|---|---|"]
    max_open = max((s["opened"] for r in results["connections"].values() for s in r["steps"]), default=0)
    failed = sum(s["failed"] for r in results["connections"].values() for s in r["steps"])
    lines.append(f"| ≥ {TARGET_CONNECTIONS:,} concurrent sockets, zero errors | {max_open:,} open, {failed} failed | "
                 f"{'yes' if max_open >= TARGET_CONNECTIONS and not failed else 'no'} |")
    kib = [s["kib_per_connection"] for r in results["connections"].values() for s in r["steps"] if s["kib_per_connection"]]
    if kib:
        lines.append(f"| ≤ {TARGET_KIB_PER_CONNECTION} KiB per idle connection | {min(kib):.1f}-{max(kib):.1f} KiB | "
                     f"{'yes' if max(kib) <= TARGET_KIB_PER_CONNECTION else 'no'} |")
    best = max((r["saturation_deliveries_per_s"] for n, r in fanout.items() if n != "baseline relay"), default=0)
    if baseline:
        lines.append(f"| fan-out ≥ {TARGET_BASELINE_RATIO}× baseline | {best / baseline:.2f}× | "
                     f"{'yes' if best / baseline >= TARGET_BASELINE_RATIO else 'no'} |")
    p99s = [r["latency_ms"]["p99"] for n, r in fanout.items() if n != "baseline relay" and r["latency_ms"]["p99"]]
    if p99s:
        lines.append(f"| p99 ≤ {TARGET_P99_MS} ms at half saturation | {min(p99s):.1f}-{max(p99s):.1f} ms | "
                     f"{'yes' if min(p99s) <= TARGET_P99_MS else 'no'} |")
    split = next((r for n, r in results["isolation"].items() if n.startswith("split")), None)
    if split:
        lines.append(f"| split stack: storm p99 ≤ {TARGET_STORM_RATIO}× idle p99 | {split['p99_ratio']:.2f}× | "
                     f"{'yes' if split['p99_ratio'] <= TARGET_STORM_RATIO else 'no'} |")
    return "\n".join(lines) + "\n"


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
    """Write ``fanout.png`` (delivered vs offered), ``latency.png`` and ``connections.png`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with _figure(plt, out / "fanout.png", "Fan-out: delivery until saturation") as axis:
        for name, result in results["fanout"].items():
            offered = [s["expected"] / max(1e-9, s["sent"]) * s["offered_messages_per_s"] for s in result["steps"]]
            axis.plot(offered, [s["delivered_per_s"] for s in result["steps"]], marker="o", label=name)
        axis.set_xlabel("offered deliveries/s")
        axis.set_ylabel("delivered deliveries/s")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.legend(fontsize=8)

    with _figure(plt, out / "latency.png", "End-to-end latency at half saturation") as axis:
        names = list(results["fanout"])
        for offset, quantile in enumerate(("p50", "p95", "p99")):
            values = [results["fanout"][n]["latency_ms"][quantile] or 0 for n in names]
            axis.bar([i + offset * 0.27 for i in range(len(names))], values, width=0.27, label=quantile)
        axis.set_xticks([i + 0.27 for i in range(len(names))], names, rotation=20, ha="right", fontsize=8)
        axis.set_ylabel("ms")
        axis.legend()

    with _figure(plt, out / "connections.png", "Memory per idle connection") as axis:
        for name, result in results["connections"].items():
            axis.plot([s["opened"] for s in result["steps"]], [s["kib_per_connection"] or 0 for s in result["steps"]],
                      marker="o", label=name)
        axis.axhline(TARGET_KIB_PER_CONNECTION, linestyle="--", color="grey", label="target")
        axis.set_xlabel("open idle sockets")
        axis.set_ylabel("KiB per connection per worker")
        axis.legend(fontsize=8)
