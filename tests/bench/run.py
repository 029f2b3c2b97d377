"""The benchmark scenarios: each compares configurations side by side in one run.

Every configuration is a real native stack (``deploy.native.NativeStack``:
Redis, gunicorn, ASGI workers, nginx) driven through nginx by load-generator
processes (``tests.bench.loadgen``), except the baseline relay, which is the
``websockets`` library + Redis pub/sub with no Django (``tests.bench.relay``).
The stack's own CPU seconds and RSS come from psutil, per process.
"""

import collections
import contextlib
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
from pathlib import Path

import psutil
import requests

from deploy import nginx
from deploy.native import NativeStack, StackConfig, wait_for_port
from tests.bench.loadgen import GRACE_SECONDS, new_histogram, serve
from tests.clients import ChatClient
from tests.postgres import postgres_server

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
# The stop rule of every fan-out configuration: a step passes when at least
# this share of its expected deliveries arrived and its p99 stayed under the bound.
DELIVERED_MIN = 0.99
P99_BOUND_MS = 500
REFINE_STEPS = 3  # bisection steps after the ladder: saturation to within ~9%


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


@dataclass
class CpuPlan:
    """Which CPUs the stack and the load generators get (sets of CPU numbers).

    With two or more CPUs the load generators (and the orchestrator's HTTP
    sampling) run on the last one and the stack on the others, so the client
    side does not take the cycles it measures; on one CPU both share it.
    """

    stack: set
    loadgen: set

    @classmethod
    def of_this_machine(cls, pin=True):
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(set(cpus), set(cpus))
        return cls(set(cpus[:-1]), {cpus[-1]})

    @property
    def pinned(self):
        return self.stack != self.loadgen

    def describe(self):
        if not self.pinned:
            return f"not pinned: stack and load generators share CPUs {sorted(self.stack)}"
        return (f"pinned (sched_setaffinity): stack on CPU {','.join(map(str, sorted(self.stack)))}, "
                f"load generators and HTTP sampling on CPU {','.join(map(str, sorted(self.loadgen)))}")

    @contextmanager
    def starting_stack(self):
        """Processes started inside inherit the stack's CPUs; the orchestrator returns to the load generators'."""
        os.sched_setaffinity(0, self.stack)
        try:
            yield
        finally:
            os.sched_setaffinity(0, self.loadgen)


@contextmanager
def native_target(name, server="daphne", workers=2, layer=None, single_process=False, env=None, cpus=None,
                  database="sqlite"):
    """Start a native stack configured for benchmarking; yield its :class:`Target`.

    ``env`` (dict) adds settings (e.g. ``{"ASGI_CPU_WEIGHT": "100"}``);
    ``cpus`` (a :class:`CpuPlan`) pins the stack's processes; ``database``
    is ``"sqlite"`` (the native default) or ``"postgresql"`` (a server of
    its own, ``tests.postgres``, on the stack's CPUs, PostgreSQL's default
    ``synchronous_commit=on``).
    """
    with contextlib.ExitStack() as resources:
        env = {**BENCH_ENV, **(env or {})}
        database_pid = None
        if database == "postgresql":
            with cpus.starting_stack() if cpus else contextlib.nullcontext():
                env["DATABASE_URL"], database_pid = resources.enter_context(postgres_server(free_port()))
        elif database != "sqlite":
            raise ValueError(f"database {database!r} is not sqlite or postgresql")
        yield from _native_target(name, server, workers, layer, single_process, env, cpus, database_pid)


def database_processes(pid):
    """Return ``[psutil.Process]``: the PostgreSQL postmaster ``pid`` and its backends (empty for None)."""
    if pid is None:
        return []
    try:
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except psutil.Error:
        return []


def _native_target(name, server, workers, layer, single_process, env, cpus, database_pid=None):
    ports = [free_port() for _ in range(3 + workers)]
    if layer:
        env["CHANNEL_LAYER_BACKEND"] = layer
    run_dir = tempfile.mkdtemp(prefix="bench-stack-")
    config = StackConfig(port=ports[0], web_port=ports[1], redis_port=ports[2], asgi_ports=ports[3:],
                         asgi_server=server, run_dir=run_dir, extra_env=env, nginx=BENCH_NGINX,
                         single_process=single_process,
                         **({"asgi_cpu_weight": int(env["ASGI_CPU_WEIGHT"])} if "ASGI_CPU_WEIGHT" in env else {}))
    stack = NativeStack(config)
    try:
        with cpus.starting_stack() if cpus else contextlib.nullcontext():
            stack.start(timeout=120)
        stack.manage("shell", "-c", (
            "from django.contrib.auth import get_user_model\n"
            f"u, _ = get_user_model().objects.get_or_create(username={USER!r})\n"
            f"u.set_password({PASSWORD!r}); u.save()\n"), capture=True)
        client = ChatClient(stack.config.url, USER, PASSWORD).login()
        yield Target(name, stack.config.url, client.cookie_header(),
                     lambda: {**stack_processes(stack), "database": database_processes(database_pid)}, stack,
                     {"session": client})
    finally:
        stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def relay_target(workers=2, cpus=None):
    """Start Redis, ``workers`` baseline relay processes and nginx in front of them; yield the :class:`Target`.

    nginx is rendered from the same templates and benchmark settings as the
    stack's (``deploy.nginx``), so the relay pays the same proxy hop.
    """
    redis_port, nginx_port = free_port(), free_port()
    relay_ports = [free_port() for _ in range(workers)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    for sub in ("log", "nginx-tmp", "static"):
        (workdir / sub).mkdir()
    nginx.render(workdir, main=True, run_dir=str(workdir), log_dir=str(workdir / "log"),
                 listen=f"127.0.0.1:{nginx_port}", web_servers=[f"127.0.0.1:{relay_ports[0]}"],
                 asgi_servers=[f"127.0.0.1:{port}" for port in relay_ports], static_root=str(workdir / "static"),
                 run_as_user="root" if os.geteuid() == 0 else None, **BENCH_NGINX)
    started = []
    try:
        with cpus.starting_stack() if cpus else contextlib.nullcontext():
            started.append(subprocess.Popen(
                [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(redis_port), "--bind",
                 "127.0.0.1", "--save", "", "--dir", str(workdir)], stdout=subprocess.DEVNULL))
            for port in relay_ports:
                started.append(subprocess.Popen([sys.executable, "-m", "tests.bench.relay", "--port", str(port),
                                                 "--redis-url", f"redis://127.0.0.1:{redis_port}/0"]))
            started.append(subprocess.Popen(
                [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
                 "-e", str(workdir / "log" / "error.log"), "-g", "daemon off;"]))
        for port in (*relay_ports, nginx_port):
            wait_for_port(port, 10)
        nginx_processes = [psutil.Process(started[-1].pid)]

        def processes():
            return {"asgi": [psutil.Process(p.pid) for p in started[1:-1]], "redis": [psutil.Process(started[0].pid)],
                    "nginx": nginx_processes + nginx_processes[0].children()}

        yield Target("baseline relay", f"http://127.0.0.1:{nginx_port}", "", processes)
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


class LoadGenerators:
    """``count`` load-generator processes holding sockets to ``rooms`` of a target, pinned to ``cpus``."""

    def __init__(self, target, rooms, count, cpus=None):
        ws_base = target.base_url.replace("http://", "ws://", 1)
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=serve, args=(child, ws_base, rooms, cpus), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
        self.meters = [psutil.Process(p.pid) for p in self.processes]
        self.target = target
        self.members = collections.Counter()  # room -> sockets open to it, over every process

    def cpu_seconds(self):
        """User + system CPU seconds the load generators have used so far (float)."""
        return cpu_seconds({"loadgen": self.meters})

    def ask(self, commands):
        """Send one command per process (list), wait for every answer; return the answers."""
        for pipe, command in zip(self.pipes, commands):
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def open(self, total, concurrency=100):
        share = [total // len(self.pipes) + (1 if i < total % len(self.pipes) else 0) for i in range(len(self.pipes))]
        answers = self.ask([("open", self.target.cookie, self.target.base_url, n, concurrency) for n in share])
        workers, errors = collections.Counter(), collections.Counter()
        for answer in answers:
            workers.update(answer["workers"])
            errors.update(answer["errors"])
            self.members.update(answer["members"])
        return {"opened": sum(a["opened"] for a in answers), "failed": sum(a["failed"] for a in answers),
                "seconds": max(a["seconds"] for a in answers), "workers": dict(workers), "errors": dict(errors)}

    def held(self):
        """Sockets open now and closed by the server side since opening, over every process."""
        answers = self.ask([("held",)] * len(self.pipes))
        return {"open": sum(a["open"] for a in answers), "closed": sum(a["closed"] for a in answers)}

    def start_fanout(self, step, rate, seconds):
        for index, pipe in enumerate(self.pipes):
            pipe.send(("fanout", step, rate, seconds, index == 0))

    def finish_fanout(self):
        """Collect a step: scheduled messages, deliveries, late, lost frames, the merged latency histogram."""
        answers = [pipe.recv() for pipe in self.pipes]
        histogram, by_room = new_histogram(), collections.Counter()
        for answer in answers:
            histogram.decode_and_add(answer["histogram"])
            by_room.update(answer["scheduled_by_room"])
        return {"scheduled": sum(a["scheduled"] for a in answers), "send_failed": sum(a["send_failed"] for a in answers),
                "received": sum(a["received"] for a in answers), "late": sum(a["late"] for a in answers),
                "stragglers": sum(a["stragglers"] for a in answers), "histogram": histogram,
                # Each message is expected once per socket its room really has (a failed handshake is not a loss).
                "expected": sum(n * self.members[room] for room, n in by_room.items())}

    def close(self):
        for pipe in self.pipes:
            pipe.send(("close",))
        for pipe, process in zip(self.pipes, self.processes):
            try:
                pipe.recv()
            except EOFError:
                pass
            process.join(10)


def quantiles_ms(histogram):
    """p50/p95/p99/p99.9/max (ms, float; None without samples) of a µs HdrHistogram."""
    if not histogram.get_total_count():
        return {q: None for q in ("p50", "p95", "p99", "p999", "max")}
    values = {q: histogram.get_value_at_percentile(p) / 1000 for q, p in
              (("p50", 50), ("p95", 95), ("p99", 99), ("p999", 99.9))}
    values["max"] = histogram.get_max_value() / 1000
    return values


def asgi_thread_seconds(processes):
    """Return ``{"event loop": s, "other threads": s}``: CPU seconds of the ASGI workers' main threads and the rest.

    The rest is mostly the database thread (Channels' ``database_sync_to_async``);
    ``processes`` is a :func:`stack_processes` dict.
    """
    split = {"event loop": 0.0, "other threads": 0.0}
    for process in processes.get("asgi", []):
        try:
            for thread in process.threads():
                key = "event loop" if thread.id == process.pid else "other threads"
                split[key] += thread.user_time + thread.system_time
        except psutil.Error:
            pass
    return split


def measure_step(target, load, name, rate, seconds, members, cpus):
    """Run one fan-out step at ``rate`` messages/s for ``seconds``; return its figures (dict).

    Deliveries are those of messages *scheduled* inside the step (counted by
    the schedule, not by arrival), so a step is never credited with the
    previous step's backlog; ``lost`` = expected - delivered by the end of the
    step's grace (:data:`GRACE_SECONDS`); latencies run from the scheduled
    send time (no coordinated omission), every one of them in the histogram.
    """
    processes = target.processes()
    cpu_before, loadgen_before, wall = cpu_seconds(processes), load.cpu_seconds(), time.monotonic()
    roles_before, threads_before = {role: cpu_seconds({role: group}) for role, group in processes.items()}, \
        asgi_thread_seconds(processes)
    load.start_fanout(name, rate, seconds)
    result = load.finish_fanout()
    wall = time.monotonic() - wall
    processes = target.processes()
    roles_after, threads_after = {role: cpu_seconds({role: group}) for role, group in processes.items()}, \
        asgi_thread_seconds(processes)
    expected = result["expected"]
    latency = quantiles_ms(result["histogram"])
    return {
        "offered_messages_per_s": rate, "offered_deliveries_per_s": rate * members,
        "scheduled": result["scheduled"], "send_failed": result["send_failed"], "expected": expected,
        "delivered": result["received"], "late": result["late"], "lost": max(0, expected - result["received"]),
        "stragglers": result["stragglers"], "delivered_per_s": result["received"] / seconds,
        "ratio": result["received"] / expected if expected else 0.0, "latency_ms": latency,
        "stack_cpu_s": cpu_seconds(processes) - cpu_before,
        # The same seconds by role (asgi, web, nginx, redis, database), and the ASGI workers' by thread.
        "cpu_s_by_role": {role: roles_after[role] - roles_before.get(role, 0.0) for role in roles_after},
        "asgi_cpu_s_by_thread": {key: threads_after[key] - threads_before[key] for key in threads_after},
        # Share of the load generators' CPUs they used (1.0: they were the bottleneck).
        "loadgen_cpu_share": (load.cpu_seconds() - loadgen_before) / wall / max(1, len(cpus or os.sched_getaffinity(0))),
    }


def step_passes(step):
    """The one stop rule for every configuration: ≥ DELIVERED_MIN delivered and p99 ≤ P99_BOUND_MS."""
    p99 = step["latency_ms"]["p99"]
    return step["ratio"] >= DELIVERED_MIN and p99 is not None and p99 <= P99_BOUND_MS


def fanout(target, rooms, members, rates, seconds, processes, progress, cpus=None):
    """Fan-out: ``rooms`` x ``members`` sockets; one publisher on a fixed schedule at increasing ``rates``
    (messages/s) until a step fails :func:`step_passes`. Returns every step, the saturation (deliveries/s of
    the fastest passing step), latency at half that rate, and server CPU seconds per 1,000 deliveries."""
    room_names = [f"bench-{i}" for i in range(rooms)]
    load = LoadGenerators(target, room_names, processes, cpus)
    try:
        opened = load.open(rooms * members)
        load.start_fanout("warmup", rates[0], 2)  # connections, caches, pools: not measured
        load.finish_fanout()
        steps, saturation, passed_rate, failed_rate = [], 0.0, None, None

        def step_at(rate):
            nonlocal saturation, passed_rate, failed_rate
            step = measure_step(target, load, f"s{len(steps)}", rate, seconds, members, cpus)
            step["passed"] = step_passes(step)
            steps.append(step)
            progress(f"{target.name}: {rate:.0f} msg/s -> {step['delivered_per_s']:.0f} deliveries/s "
                     f"({step['ratio']:.1%}, {step['lost']} lost, {step['late']} late), "
                     f"p99 {step['latency_ms']['p99'] or 0:.0f} ms, load generators {step['loadgen_cpu_share']:.0%}")
            if step["passed"]:
                passed_rate = max(passed_rate or 0, rate)
                saturation = max(saturation, step["delivered_per_s"])
            else:
                failed_rate = min(failed_rate or rate, rate)
                time.sleep(GRACE_SECONDS + 2)  # the failed step's backlog drains before the next one
            return step["passed"]

        for rate in rates:
            if not step_at(rate):
                break
        # Bisect (geometrically) between the last rate that passed and the first that failed, so that
        # saturation is known to about 2^(1/2^REFINE) of the ladder's doubling, not to a factor of 2.
        for _ in range(REFINE_STEPS if passed_rate and failed_rate else 0):
            step_at((passed_rate * failed_rate) ** 0.5)
        half_rate = max(1.0, saturation / 2 / members) if saturation else rates[0] / 2
        half = measure_step(target, load, "half", half_rate, max(seconds, 4), members, cpus)
        progress(f"{target.name}: half saturation {half_rate:.0f} msg/s, p99 {half['latency_ms']['p99'] or 0:.1f} ms")
        return {
            "sockets": opened, "steps": steps, "saturation_deliveries_per_s": saturation,
            "saturation_messages_per_s": saturation / members, "half": half,
            # Every step passed: saturation is above the ladder's top (a lower bound only).
            "saturation_above_ladder": failed_rate is None,
            "half_rate_messages_per_s": half_rate, "latency_ms": half["latency_ms"],
            "cpu_s_per_1000_deliveries": 1000 * half["stack_cpu_s"] / half["delivered"] if half["delivered"] else None,
        }
    finally:
        load.close()


def asgi_rss(target):
    """``{pid: RSS bytes}`` of the target's ASGI workers."""
    found = {}
    for process in target.processes()["asgi"]:
        try:
            found[process.pid] = process.memory_info().rss
        except psutil.Error:
            pass
    return found


def kib_per_socket(baseline, rss, per_worker):
    """Mean over workers of (RSS growth / sockets held), KiB; None when no worker can be matched."""
    kib = []
    for worker, n in per_worker.items():
        pid = int(worker.rsplit(":", 1)[1])
        if pid in rss and pid in baseline and n:
            kib.append((rss[pid] - baseline[pid]) / 1024 / n)
    return statistics.mean(kib) if kib else None


def connections(target, count, hold_seconds, processes, progress, cpus=None):
    """Open ``count`` idle sockets, hold them ``hold_seconds`` (polling every 5 s for any the server closed);
    return connect rate, failures, drops and ASGI RSS growth per socket (KiB) after opening and after holding."""
    # Spread over 100 rooms, as idle users are: every join announces presence
    # to its room, so one room of N sockets costs N² frames (see benchmarks.md).
    load = LoadGenerators(target, [f"idle-{i}" for i in range(100)], processes, cpus)
    try:
        baseline = asgi_rss(target)
        answer = load.open(count, concurrency=25)
        time.sleep(2)
        kib_open = kib_per_socket(baseline, asgi_rss(target), answer["workers"])
        deadline, held = time.monotonic() + hold_seconds, load.held()
        while time.monotonic() < deadline:
            time.sleep(min(5, max(0, deadline - time.monotonic())))
            held = load.held()
        kib_held = kib_per_socket(baseline, asgi_rss(target), answer["workers"])
        result = {"target": count, "opened": answer["opened"], "failed": answer["failed"], "errors": answer["errors"],
                  "connect_per_s": answer["opened"] / answer["seconds"] if answer["seconds"] else None,
                  "hold_seconds": hold_seconds, "open_after_hold": held["open"], "dropped": held["closed"],
                  "kib_per_connection": kib_open, "kib_per_connection_after_hold": kib_held,
                  "per_worker": answer["workers"]}
        progress(f"{target.name}: {answer['opened']} sockets ({answer['failed']} failed), {kib_open or 0:.1f} KiB each; "
                 f"after {hold_seconds} s {held['open']} open, {held['closed']} dropped")
        return result
    finally:
        load.close()


def http_latencies(target, rate, seconds):
    """GET a gunicorn page at ``rate`` requests/s for ``seconds`` on a fixed schedule; return a µs histogram.

    Sequential requests, each recorded with HdrHistogram's
    ``record_corrected_value`` (the library's coordinated-omission
    correction, after Gil Tene's HdrHistogram): a request that blocks the
    schedule also counts the requests that should have been sent meanwhile.
    """
    session = target.extra["session"].http
    histogram, interval_us = new_histogram(), int(1_000_000 / rate)
    errors, started = 0, time.monotonic()
    for index in range(int(rate * seconds)):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        try:
            response = session.get(f"{target.base_url}/chat/lobby/", timeout=30)
            if response.status_code != 200:
                errors += 1
        except requests.RequestException:
            errors += 1
        histogram.record_corrected_value(max(1, int((time.perf_counter() - began) * 1_000_000)), interval_us)
    return histogram, errors


def isolation(target, storms, http_rate, seconds, rooms, members, processes, progress, cpus=None):
    """HTTP p50/p99 of a gunicorn (or daphne) page, idle and during each WebSocket storm of ``storms``
    (``{label: messages/s}``); ``rooms`` x ``members`` sockets carry each storm, which starts 1 s before the
    HTTP sampling (``seconds`` at ``http_rate`` requests/s) and ends 1 s after it."""
    idle, idle_errors = http_latencies(target, http_rate, seconds)
    result = {"idle": {**quantiles_ms(idle), "requests": idle.get_total_count(), "errors": idle_errors}, "storms": {}}
    load = LoadGenerators(target, [f"storm-{i}" for i in range(rooms)], processes, cpus)
    try:
        result["sockets"] = load.open(rooms * members)
        for label, rate in storms.items():
            load.start_fanout(f"storm-{label}", rate, seconds + 2)
            time.sleep(1)
            storm, errors = http_latencies(target, http_rate, seconds)
            delivered = load.finish_fanout()
            expected = delivered["expected"]
            entry = {**quantiles_ms(storm), "requests": storm.get_total_count(), "errors": errors,
                     "storm_messages_per_s": rate, "storm_delivered_ratio": delivered["received"] / expected if expected else 0.0}
            entry["p99_ratio"] = entry["p99"] / result["idle"]["p99"] if result["idle"]["p99"] else None
            result["storms"][label] = entry
            progress(f"{target.name}: HTTP p99 idle {result['idle']['p99']:.1f} ms, storm {label} ({rate:.0f} msg/s) "
                     f"{entry['p99']:.1f} ms = {entry['p99_ratio']:.2f}x")
            time.sleep(GRACE_SECONDS)
    finally:
        load.close()
    return result


def machine(cpus):
    """What the run ran on and with (dict): commit, package versions, CPU model, CPUs, pinning, load average."""
    import platform
    from importlib import metadata

    def command(*argv):
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (result.stdout or result.stderr).strip()
        except (OSError, subprocess.SubprocessError):
            return None

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    packages = {}
    for name in ("Django", "channels", "channels-redis", "daphne", "uvicorn", "websockets", "wsproto", "gunicorn",
                 "redis", "Twisted", "autobahn", "hdrhistogram"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    dirty = command("git", "status", "--porcelain")
    return {
        "host": platform.node(), "cpu_model": model, "cpus": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total // 2**30, "platform": platform.platform(),
        "python": platform.python_version(), "commit": command("git", "rev-parse", "HEAD"),
        "dirty": bool(dirty), "packages": packages, "nginx": command("nginx", "-v"),
        "redis": command("redis-server", "--version"), "pinning": cpus.describe(),
        "load_average_before": os.getloadavg(),
    }
