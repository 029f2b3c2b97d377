"""The benchmark scenarios: each compares configurations side by side in one run.

Every configuration is a real native stack (``deploy.native.NativeStack``:
Redis, gunicorn, ASGI workers, nginx) driven through nginx by load-generator
processes (``tests.bench.loadgen``), except the baseline relay, which is the
``websockets`` library + Redis pub/sub with no Django (``tests.bench.relay``).
The stack's own CPU seconds and RSS come from psutil, per process.
"""

import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

from deploy.native import NativeStack, StackConfig, wait_for_port
from tests.bench.loadgen import serve
from tests.clients import ChatClient

# Limits off (the benchmark is one client address and one user), logs quiet.
BENCH_ENV = {
    "CHAT_RATE_LIMIT_PER_CONNECTION": "1000000/second",
    "CHAT_RATE_LIMIT_PER_USER": "1000000/second",
    "CHAT_MAX_SOCKETS_PER_USER": "1000000",
    "LOG_LEVEL": "WARNING",
}
BENCH_NGINX = {"ws_conn_per_ip": 60000, "ws_handshake_rate": "100000r/s", "ws_handshake_burst": 100000,
               "worker_connections": 12000}
USER, PASSWORD = "bench", "bench-password-not-secret"


@dataclass
class Target:
    """Where the load goes: ``base_url`` (nginx, or the relay), a session cookie, the processes to meter."""

    name: str
    base_url: str
    cookie: str
    processes: callable  # () -> {role: [psutil.Process]}
    stack: object = None
    extra: dict = field(default_factory=dict)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stack_processes(stack):
    """Return ``{role: [psutil.Process]}`` of a native stack (children of its supervisord)."""
    roles = {"asgi": [], "web": [], "nginx": [], "redis": []}
    for process in psutil.Process(stack.process.pid).children(recursive=True):
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if "runasgi" in command or "uvicorn" in command or "daphne" in command:
            roles["asgi"].append(process)
        elif "gunicorn" in command:
            roles["web"].append(process)
        elif "nginx" in command:
            roles["nginx"].append(process)
        elif "redis-server" in command:
            roles["redis"].append(process)
    return roles


def cpu_seconds(processes):
    """Sum of user + system CPU seconds of ``{role: [Process]}``."""
    total = 0.0
    for group in processes.values():
        for process in group:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    return total


@contextmanager
def native_target(name, server="daphne", workers=2, layer=None, single_process=False):
    """Start a native stack configured for benchmarking; yield its :class:`Target`."""
    ports = [free_port() for _ in range(3 + workers)]
    env = dict(BENCH_ENV)
    if layer:
        env["CHANNEL_LAYER_BACKEND"] = layer
    run_dir = tempfile.mkdtemp(prefix="bench-stack-")
    stack = NativeStack(StackConfig(port=ports[0], web_port=ports[1], redis_port=ports[2], asgi_ports=ports[3:],
                                    asgi_server=server, run_dir=run_dir, extra_env=env, nginx=BENCH_NGINX,
                                    single_process=single_process))
    stack.start(timeout=120)
    try:
        stack.manage("shell", "-c", (
            "from django.contrib.auth import get_user_model\n"
            f"u, _ = get_user_model().objects.get_or_create(username={USER!r})\n"
            f"u.set_password({PASSWORD!r}); u.save()\n"), capture=True)
        client = ChatClient(stack.config.url, USER, PASSWORD).login()
        yield Target(name, stack.config.url, client.cookie_header(), lambda: stack_processes(stack), stack,
                     {"session": client})
    finally:
        stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def relay_target():
    """Start Redis and the baseline relay; yield its :class:`Target` (no nginx, no Django)."""
    redis_port, relay_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="bench-relay-")
    redis = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(redis_port),
                              "--bind", "127.0.0.1", "--save", "", "--dir", workdir], stdout=subprocess.DEVNULL)
    relay = subprocess.Popen([sys.executable, "-m", "tests.bench.relay", "--port", str(relay_port),
                              "--redis-url", f"redis://127.0.0.1:{redis_port}/0"])
    try:
        wait_for_port(relay_port, 10)
        processes = {"asgi": [psutil.Process(relay.pid)], "redis": [psutil.Process(redis.pid)]}
        yield Target("baseline relay", f"http://127.0.0.1:{relay_port}", "", lambda: processes)
    finally:
        for process in (relay, redis):
            process.terminate()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


class LoadGenerators:
    """``count`` load-generator processes holding sockets to ``rooms`` of a target."""

    def __init__(self, target, rooms, count):
        ws_base = target.base_url.replace("http://", "ws://", 1)
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=serve, args=(child, ws_base, rooms), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
        self.target = target

    def ask(self, commands):
        """Send one command per process (list), wait for every answer; return the answers."""
        for pipe, command in zip(self.pipes, commands):
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def open(self, total, concurrency=100):
        share = [total // len(self.pipes) + (1 if i < total % len(self.pipes) else 0) for i in range(len(self.pipes))]
        answers = self.ask([("open", self.target.cookie, self.target.base_url, n, concurrency) for n in share])
        workers = {}
        for answer in answers:
            for worker, n in answer["workers"].items():
                workers[worker] = workers.get(worker, 0) + n
        return {"opened": sum(a["opened"] for a in answers), "failed": sum(a["failed"] for a in answers),
                "seconds": max(a["seconds"] for a in answers), "workers": workers}

    def start_fanout(self, step, rate, seconds):
        for index, pipe in enumerate(self.pipes):
            pipe.send(("fanout", step, rate, seconds, index == 0))

    def finish_fanout(self):
        answers = [pipe.recv() for pipe in self.pipes]
        latencies = [value for answer in answers for value in answer["latencies_ms"]]
        return {"sent": sum(a["sent"] for a in answers), "received": sum(a["received"] for a in answers),
                "latencies_ms": latencies}

    def close(self):
        for pipe in self.pipes:
            pipe.send(("close",))
        for pipe, process in zip(self.pipes, self.processes):
            try:
                pipe.recv()
            except EOFError:
                pass
            process.join(10)


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def fanout(target, rooms, members, rates, seconds, processes, progress):
    """Fan-out: ``rooms`` x ``members`` sockets; publishers at increasing ``rates`` (messages/s) until delivery
    falls behind (under 95% of expected deliveries, or p99 over 1 s). Returns delivered messages/s at
    saturation, latency percentiles at half that rate, and server CPU seconds per 1,000 deliveries."""
    room_names = [f"bench-{i}" for i in range(rooms)]
    load = LoadGenerators(target, room_names, processes)
    try:
        opened = load.open(rooms * members)
        load.start_fanout("warmup", rates[0], 2)  # connections, caches, pools: not measured
        load.finish_fanout()
        steps, best = [], 0.0
        for index, rate in enumerate(rates):
            cpu_before = cpu_seconds(target.processes())
            load.start_fanout(f"s{index}", rate, seconds)
            result = load.finish_fanout()
            cpu = cpu_seconds(target.processes()) - cpu_before
            expected = result["sent"] * members
            delivered_per_s = result["received"] / seconds
            p99 = percentile(result["latencies_ms"], 0.99)
            step = {"offered_messages_per_s": rate, "sent": result["sent"], "expected": expected,
                    "received": result["received"], "delivered_per_s": delivered_per_s,
                    "ratio": result["received"] / expected if expected else 0, "p99_ms": p99, "cpu_s": cpu}
            steps.append(step)
            progress(f"{target.name}: {rate} msg/s -> {delivered_per_s:.0f} deliveries/s, p99 {p99 or 0:.0f} ms")
            best = max(best, delivered_per_s)
            if step["ratio"] < 0.95 or (p99 or 0) > 1000:
                break
        half_rate = max(1.0, best / 2 / members)
        time.sleep(seconds + 3)  # let a saturated step's backlog drain before measuring latency
        cpu_before = cpu_seconds(target.processes())
        load.start_fanout("half", half_rate, seconds)
        half = load.finish_fanout()
        cpu = cpu_seconds(target.processes()) - cpu_before
        progress(f"{target.name}: half saturation {half_rate:.0f} msg/s, p99 {percentile(half['latencies_ms'], .99) or 0:.0f} ms")
        return {
            "sockets": opened, "steps": steps, "saturation_deliveries_per_s": best,
            "half_rate_messages_per_s": half_rate,
            "latency_ms": {q: percentile(half["latencies_ms"], f) for q, f in (("p50", .5), ("p95", .95), ("p99", .99))},
            "cpu_s_per_1000_deliveries": 1000 * cpu / half["received"] if half["received"] else None,
        }
    finally:
        load.close()


def connections(target, steps, processes, progress):
    """Idle sockets opened in ``steps`` (cumulative counts); RSS per connection per ASGI worker, connect rate."""
    # Spread over 100 rooms, as idle users are: every join announces presence
    # to its room, so one room of N sockets costs N² frames (see benchmarks.md).
    load = LoadGenerators(target, [f"idle-{i}" for i in range(100)], processes)
    try:
        baseline = {p.pid: p.memory_info().rss for p in target.processes()["asgi"]}
        results, opened_total, per_worker = [], 0, {}
        for count in steps:
            answer = load.open(count - opened_total, concurrency=25)
            opened_total += answer["opened"]
            for worker, n in answer["workers"].items():
                per_worker[worker] = per_worker.get(worker, 0) + n
            time.sleep(2)
            rss = {p.pid: p.memory_info().rss for p in target.processes()["asgi"]}
            kib = []
            for worker, n in per_worker.items():
                pid = int(worker.rsplit(":", 1)[1])
                if pid in rss and pid in baseline and n:
                    kib.append((rss[pid] - baseline[pid]) / 1024 / n)
            results.append({"target": count, "opened": opened_total, "failed": answer["failed"],
                            "connect_per_s": answer["opened"] / answer["seconds"] if answer["seconds"] else None,
                            "kib_per_connection": statistics.mean(kib) if kib else None,
                            "per_worker": dict(per_worker)})
            progress(f"{target.name}: {opened_total} sockets ({answer['failed']} failed), "
                     f"{results[-1]['kib_per_connection'] or 0:.1f} KiB each")
            if answer["failed"]:
                break
        return {"steps": results}
    finally:
        load.close()


def http_latencies(target, count):
    session = target.extra["session"].http
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(f"{target.base_url}/chat/lobby/", timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return latencies


def isolation(target, requests_count, storm_rate, storm_sockets, processes, progress):
    """HTTP p50/p99 of a gunicorn (or daphne) page, idle and during a WebSocket storm."""
    idle = http_latencies(target, requests_count)
    load = LoadGenerators(target, [f"storm-{i}" for i in range(10)], processes)
    try:
        load.open(storm_sockets)
        seconds = max(3, requests_count // 40)
        load.start_fanout("storm", storm_rate, seconds)
        storm = http_latencies(target, requests_count)
        load.finish_fanout()
    finally:
        load.close()
    result = {"idle": {"p50_ms": percentile(idle, .5), "p99_ms": percentile(idle, .99)},
              "storm": {"p50_ms": percentile(storm, .5), "p99_ms": percentile(storm, .99)}}
    result["p99_ratio"] = result["storm"]["p99_ms"] / result["idle"]["p99_ms"]
    progress(f"{target.name}: HTTP p99 idle {result['idle']['p99_ms']:.1f} ms, storm {result['storm']['p99_ms']:.1f} ms")
    return result


def machine():
    """A short description of this machine (str)."""
    import platform

    return (f"{platform.node()}: {os.cpu_count()} cores, {psutil.virtual_memory().total // 2**30} GiB, "
            f"{platform.platform()}, Python {platform.python_version()}")
