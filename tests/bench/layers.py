"""``.venv/bin/python -m tests.bench.layers [ROUNDS]``: Switchyard's channel layer vs channels_redis' core, side by side.

The fan-out scenario (``run.fanout``: 10 rooms x 20 members, one load
generator process, steps of 40-160 messages/s) on daphne x 2, once with
``switchyard.layers.RedisChannelLayer`` (the default) and once with
``channels_redis.core.RedisChannelLayer``, alternating which goes first for
``ROUNDS`` rounds (default 4). Prints one JSON line per configuration and
round, then the ratios of the means (ours / stock). The figures are in
docs/benchmarks-profile.md ("The channel layer default").
"""

import json
import statistics
import sys

from tests.bench import run

# channels_redis' own core layer, which switchyard.layers (the default) builds on.
STOCK_CORE = "channels_redis.core.RedisChannelLayer"

CONFIGS = [("switchyard.layers", None), ("channels_redis core", STOCK_CORE)]
RATES = [40, 60, 80, 100, 120, 140, 160]  # messages/s offered per step


def main(rounds=4):
    """Run ``rounds`` rounds (int) of both configurations; return the list of result dicts."""
    results = []
    for index in range(rounds):
        for name, layer in CONFIGS[::-1] if index % 2 else CONFIGS:
            with run.native_target(f"daphne x2, {name}", "daphne", 2, layer) as target:
                fan = run.fanout(target, 10, 20, RATES, 3, 1, lambda line: print(line, file=sys.stderr))
            results.append({"round": index, "layer": name,
                            "saturation_deliveries_per_s": fan["saturation_deliveries_per_s"],
                            "p50_ms": fan["latency_ms"]["p50"], "p99_ms": fan["latency_ms"]["p99"],
                            "cpu_s_per_1000_deliveries": fan["cpu_s_per_1000_deliveries"]})
            print(json.dumps(results[-1]), flush=True)
    for key in ("saturation_deliveries_per_s", "p50_ms", "p99_ms", "cpu_s_per_1000_deliveries"):
        ours, stock = ([r[key] for r in results if r["layer"] == name] for name, _ in CONFIGS)
        print(f"{key}: ours {statistics.mean(ours):.2f}, stock {statistics.mean(stock):.2f}, "
              f"ratio {statistics.mean(ours) / statistics.mean(stock):.2f}")
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
