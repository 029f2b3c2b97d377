"""``scripts/bench [--quick] [--out DIR]``: measure the stack side by side, write JSON, markdown and PNG plots.

Quick (under 3 minutes, CI's smoke test) and full (under 20 minutes) runs
compare, in one run: daphne vs uvicorn workers, 1/2/4 workers, Switchyard's
layer vs channels_redis' core and pub/sub layers, the baseline relay (no Django), idle-socket memory, and
HTTP latency under a WebSocket storm for the split stack vs one daphne serving
everything. Results: ``DIR/bench.json``, ``DIR/bench.md``, ``DIR/*.png``.
"""

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from tests.bench import run

PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
# channels_redis' own core layer, which switchyard.layers (the default) builds on.
STOCK_CORE = "channels_redis.core.RedisChannelLayer"

PLANS = {
    "quick": {
        "fanout": {"rooms": 10, "members": 10, "rates": [20, 80, 320, 1280], "seconds": 2, "processes": 1,
                   "configs": [("daphne x2", "daphne", 2, None), ("uvicorn x2", "uvicorn", 2, None)]},
        "connections": {"steps": [300], "processes": 1, "configs": [("daphne x2", "daphne", 2)]},
        "isolation": {"requests": 100, "storm_rate": 100, "storm_sockets": 100, "processes": 1},
    },
    "full": {
        "fanout": {"rooms": 10, "members": 20, "rates": [25, 50, 100, 200, 400, 800, 1600, 3200, 6400], "seconds": 3,
                   "processes": 2,
                   "configs": [("daphne x1", "daphne", 1, None), ("daphne x2", "daphne", 2, None),
                               ("daphne x4", "daphne", 4, None), ("uvicorn x2", "uvicorn", 2, None),
                               ("daphne x2, pub/sub layer", "daphne", 2, PUBSUB),
                               ("daphne x2, channels_redis core layer", "daphne", 2, STOCK_CORE)]},
        "connections": {"steps": [2500, 5000, 10000], "processes": 2,
                        "configs": [("daphne x2", "daphne", 2), ("uvicorn x2", "uvicorn", 2)]},
        "isolation": {"requests": 300, "storm_rate": 200, "storm_sockets": 400, "processes": 2},
    },
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (under 3 minutes)")
    parser.add_argument("--out", default="var/bench", help="output directory (default var/bench)")
    args = parser.parse_args(argv)
    plan = PLANS["quick" if args.quick else "full"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = {"plan": "quick" if args.quick else "full", "machine": run.machine(), "started": time.ctime()}
    total = len(plan["fanout"]["configs"]) + 1 + len(plan["connections"]["configs"]) + 2
    bar = tqdm(total=total, unit="config", dynamic_ncols=True)
    note = bar.write

    def save():  # after every configuration, so an interrupted run keeps what it measured
        (out / "bench.json").write_text(json.dumps(results, indent=2))

    fan = plan["fanout"]
    results["fanout"] = {}
    for name, server, workers, layer in fan["configs"]:
        bar.set_description(f"fan-out {name}")
        with run.native_target(name, server, workers, layer) as target:
            results["fanout"][name] = run.fanout(target, fan["rooms"], fan["members"], fan["rates"], fan["seconds"],
                                                 fan["processes"], note)
        save()
        bar.update()
    bar.set_description("fan-out baseline relay")
    with run.relay_target() as target:
        results["fanout"]["baseline relay"] = run.fanout(target, fan["rooms"], fan["members"], fan["rates"],
                                                         fan["seconds"], fan["processes"], note)
    bar.update()

    con = plan["connections"]
    results["connections"] = {}
    for name, server, workers in con["configs"]:
        bar.set_description(f"connections {name}")
        with run.native_target(name, server, workers) as target:
            results["connections"][name] = run.connections(target, con["steps"], con["processes"], note)
        save()
        bar.update()

    iso = plan["isolation"]
    results["isolation"] = {}
    for name, single in (("split: gunicorn + daphne x2", False), ("one daphne serves everything", True)):
        bar.set_description(f"isolation {name}")
        with run.native_target(name, "daphne", 1 if single else 2, single_process=single) as target:
            results["isolation"][name] = run.isolation(target, iso["requests"], iso["storm_rate"],
                                                       iso["storm_sockets"], iso["processes"], note)
        bar.update()
    bar.close()
    results["seconds"] = time.monotonic() - started

    from tests.bench import report

    save()
    (out / "bench.md").write_text(report.markdown(results))
    report.plots(results, out)
    print(f"bench: {results['plan']} run took {results['seconds']:.0f} s; results in {out}/bench.md, bench.json, *.png")


if __name__ == "__main__":
    main()
