"""Prometheus metrics of every Switchyard process, and the endpoints that serve them.

Every metric is named ``switchyard_*`` (Prometheus' naming conventions:
base units, ``_total`` counters) and has bounded labels only: never a room, a
user, a path or an address. docs/operations.md lists each one.

**Where they are served.** Each process answers ``GET /metrics`` on a port of
its own, ``METRICS_PORT_OFFSET`` (defaults.env) above the port it serves, on
the same address (``BIND_ADDRESS``): gunicorn at ``WEB_PORT + offset``
(8800), each ASGI worker at its port + offset (8900, 8901, ...). nginx never
proxies to those ports, so the public front door cannot reach them; a
Prometheus on the host, the backend network or the monitoring host can.

- **ASGI workers** (one process each): :func:`serve_worker_metrics` starts
  prometheus_client's HTTP server in a thread when ``switchyard.asgi`` is
  imported, with the process collector (CPU seconds, RSS), the metrics
  below, and :class:`DependencyCollector` (database and Redis health, from
  :class:`DependencyMonitor`'s checks every 2 s). A thread of its own keeps it answering while the worker
  drains (the worker's own port is closed by then).
- **gunicorn** (several worker processes): prometheus_client's multi-process
  mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``switchyard.gunicorn_conf``).
  The master serves the sum over its workers (``switchyard.gunicorn_conf``);
  each worker copies its own process figures into gauges labelled by pid
  (:func:`start_process_sampler`), since the library's process collector sees
  only the process that is scraped.

The instruments below are module-level, created once per process on import
(prometheus_client's model).
"""

import logging
import threading
import time

from prometheus_client import REGISTRY, Counter, Gauge, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

logger = logging.getLogger(__name__)

PREFIX = "switchyard"

# No *_created series: they double the series count and nothing here reads them.
disable_created_metrics()

# Close codes reported by their number; any other code a client sends
# (RFC 6455 allows 3000-4999) is reported as its class, so a client cannot
# create thousands of series.
KNOWN_CLOSE_CODES = {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     4000, 4401, 4403, 4408}

WEBSOCKET_CONNECTIONS = Gauge(
    "switchyard_websocket_connections",
    "WebSockets open on this process, by route (the WEBSOCKET_PATH_PREFIXES entry the path is under).",
    ["route"],
    multiprocess_mode="livesum",
)
WEBSOCKET_HANDSHAKES = Counter(
    "switchyard_websocket_handshakes_total",
    "WebSocket handshakes, by outcome (accepted, refused) and the refusal's reason (\"\" when accepted).",
    ["route", "outcome", "reason"],
)
WEBSOCKET_CLOSES = Counter(
    "switchyard_websocket_closes_total",
    "WebSockets closed after they were accepted, by who closed (server, client) and close code.",
    ["side", "code"],
)
WEBSOCKET_FRAMES = Counter(
    "switchyard_websocket_frames_total",
    "WebSocket messages received from (in) and sent to (out) clients.",
    ["direction"],
)
WEBSOCKET_BYTES = Counter(
    "switchyard_websocket_bytes_total",
    "Bytes of WebSocket messages received (in) and sent (out): the payload, UTF-8 for text.",
    ["direction"],
)
SLOW_READER_CLOSES = Counter(
    "switchyard_websocket_slow_reader_closes_total",
    "Sockets closed with 4408 because their client stopped taking what was sent to it (WEBSOCKET_SLOW_READER_*).",
)
DRAIN_IN_PROGRESS = Gauge(
    "switchyard_drain_in_progress",
    "1 while this ASGI worker drains (SIGTERM: closing its sockets with 1012), else 0.",
    multiprocess_mode="livemax",
)
CHANNEL_LAYER_MESSAGES = Counter(
    "switchyard_channel_layer_messages_total",
    "Channel-layer operations that succeeded: send, group_send, receive (messages handed to a consumer), "
    "direct (messages a consumer's direct handler took, switchyard.fanout).",
    ["operation"],
)
CHANNEL_LAYER_ERRORS = Counter(
    "switchyard_channel_layer_errors_total",
    "Channel-layer operations that raised (Redis unreachable or timed out), by operation (send, group_send, "
    "receive, reader: the task popping this process's key).",
    ["operation"],
)
CHANNEL_LAYER_RECONNECTS = Counter(
    "switchyard_channel_layer_reconnects_total",
    "Times this process read from Redis again after its channel-layer reader or subscription had failed "
    "(Redis back, or a new primary).",
)
# Children whose label values are known up front exist from the start at 0,
# so a dashboard or an alert sees "none yet" instead of no series.
# The hot paths (every frame, every channel-layer operation) use these
# children directly instead of a labels() lookup each time.
LAYER_OK = {op: CHANNEL_LAYER_MESSAGES.labels(op) for op in ("send", "group_send", "receive", "direct")}
LAYER_FAILED = {op: CHANNEL_LAYER_ERRORS.labels(op) for op in ("send", "group_send", "receive", "reader")}
FRAMES = {direction: WEBSOCKET_FRAMES.labels(direction) for direction in ("in", "out")}
BYTES = {direction: WEBSOCKET_BYTES.labels(direction) for direction in ("in", "out")}


_draining = False


def mark_draining():
    """Record that this worker started draining: :data:`DRAIN_IN_PROGRESS` 1 (and :func:`draining` True)."""
    global _draining
    _draining = True
    DRAIN_IN_PROGRESS.set(1)


def draining():
    """Return True once this worker started draining (bool)."""
    return _draining


def close_code_label(code):
    """Return the ``code`` label (str) for WebSocket close ``code`` (int or None): the number, or its class."""
    if code is None:
        return "1005"  # no status code (RFC 6455 7.1.5)
    try:
        code = int(code)
    except (TypeError, ValueError):
        return "invalid"
    if code in KNOWN_CLOSE_CODES:
        return str(code)
    if 3000 <= code <= 4999:
        return f"{code // 1000}xxx"
    return "other"


def route_label(path, prefixes):
    """Return the ``route`` label (str): the longest of ``prefixes`` (list of str) that ``path`` starts with, or ``"other"``."""
    matching = [prefix for prefix in prefixes if path.startswith(prefix)]
    return max(matching, key=len) if matching else "other"


def message_bytes(message):
    """Return the payload size in bytes (int) of an ASGI ``websocket.send``/``websocket.receive`` message."""
    text = message.get("text")
    if text is not None:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(message.get("bytes") or b"")


class DependencyMonitor(threading.Thread):
    """Run ``switchyard.health.checks()`` every :attr:`interval` seconds in a daemon thread; keep the latest answer.

    The checks are ``/healthz``'s (``SELECT 1``, Redis ``PING`` with a 1 s
    timeout, each channel-layer shard), so the metric and ``/healthz`` never
    disagree, and they run here only: scrapes and the ops page read
    :meth:`results` and never wait on a dependency. The thread keeps its own
    database connection between checks.
    """

    interval = 2.0

    def __init__(self):
        super().__init__(name="dependency checks", daemon=True)
        self.latest = {}
        self.checked_at = 0.0  # time.monotonic() of the latest answer

    def run(self):
        from switchyard import health

        while True:
            try:
                self.latest, self.checked_at = health.checks(), time.monotonic()
            except Exception as exc:  # never end the thread; the staleness below shows it
                logger.warning("dependency checks failed: %s", exc)
            time.sleep(self.interval)

    def results(self):
        """Return ``{dependency: "ok" or the error's name}``; every entry ``"stale"`` when no check finished lately.

        "Lately" is three intervals (6 s): a check stuck on an unreachable
        database makes the dependencies count as down, not as fine.
        """
        if time.monotonic() - self.checked_at > 3 * self.interval:
            return {name: "stale" for name in self.latest or {"database": None, "redis": None}}
        return dict(self.latest)


_monitor = None


def start_dependency_monitor():
    """Start this process's :class:`DependencyMonitor` (once); return it."""
    global _monitor
    if _monitor is None:
        _monitor = DependencyMonitor()
        _monitor.start()
    return _monitor


def dependencies():
    """Return the latest dependency checks (dict; empty before the monitor's first answer or without a monitor)."""
    if _monitor is None or not _monitor.checked_at:
        return {}
    return _monitor.results()


class DependencyCollector:
    """Collect ``switchyard_dependency_up{dependency}``: 1 when the dependency answers, else 0.

    From :func:`dependencies` (the monitor's latest checks, at most 6 s old),
    so a scrape never waits on the database or Redis.
    """

    @staticmethod
    def _family():
        return GaugeMetricFamily(
            "switchyard_dependency_up", "1 when this process reaches the dependency (database, redis, shards), else 0.",
            labels=["dependency"],
        )

    def describe(self):
        """The metric's description, without running any check (prometheus_client calls it at registration)."""
        yield self._family()

    def collect(self):
        family = self._family()
        for dependency, result in dependencies().items():
            family.add_metric([dependency], 1 if result == "ok" else 0)
        yield family


def serve_worker_metrics(port, addr="127.0.0.1"):
    """Serve this process's registry (and the dependency checks) at ``http://addr:port/metrics`` from a thread.

    ``port`` is an int (0 or None: no server). Returns the server, or None
    when no port is given or the port cannot be bound (logged as an error:
    the worker serves its sockets without metrics rather than not at all).
    """
    if not port:
        return None
    start_dependency_monitor()
    REGISTRY.register(DependencyCollector())
    try:
        server, _thread = start_http_server(port, addr=addr)
    except OSError as exc:
        logger.error("metrics: cannot listen on %s:%s (%s); this worker serves no metrics", addr, port, exc)
        return None
    logger.info("metrics on http://%s:%s/metrics", addr, port)
    return server


def start_process_sampler(interval=5.0):
    """Copy this process's CPU seconds and RSS (the library's process collector) into the per-pid gauges every ``interval`` seconds.

    For gunicorn workers in multi-process mode. Returns the daemon thread.
    """
    collector = ProcessCollector(registry=None)
    # Created here, in gunicorn's workers only (ASGI workers have the process collector itself).
    memory = Gauge("switchyard_web_process_resident_memory_bytes",
                   "Resident memory of each gunicorn worker, in bytes (labelled by pid).", multiprocess_mode="liveall")
    cpu = Gauge("switchyard_web_process_cpu_seconds",
                "CPU time (user + system) of each gunicorn worker so far, in seconds (labelled by pid).",
                multiprocess_mode="liveall")

    def sample():
        while True:
            for family in collector.collect():
                if family.name == "process_resident_memory_bytes":
                    memory.set(family.samples[0].value)
                elif family.name == "process_cpu_seconds":
                    cpu.set(family.samples[0].value)
            time.sleep(interval)

    thread = threading.Thread(target=sample, name="metrics process sampler", daemon=True)
    thread.start()
    return thread


def watch_uvicorn_drain():
    """Set :data:`DRAIN_IN_PROGRESS` when uvicorn receives SIGTERM/SIGINT; return True if uvicorn's handlers were found.

    uvicorn drains by itself (stops listening, closes every socket with
    1012) and installs its signal handlers before it imports the application,
    so this wraps them: the gauge is set, then uvicorn's handler runs as
    before. Under daphne (``switchyard.daphne_server`` sets the gauge) and
    anywhere else this does nothing.
    """
    import signal

    wrapped = False
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        owner = getattr(previous, "__self__", None)
        if owner is None or not type(owner).__module__.startswith("uvicorn"):
            continue

        def handler(sig, frame, previous=previous):
            mark_draining()
            previous(sig, frame)

        signal.signal(signum, handler)
        wrapped = True
    return wrapped
