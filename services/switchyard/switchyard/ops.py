"""The live operations page: ``/ops/`` for staff users, updated over a WebSocket, for any project.

**Reports.** Every ASGI worker runs a :class:`Reporter` thread (started when
``switchyard.asgi`` is imported) that every :data:`REPORT_INTERVAL` seconds
writes a snapshot of itself to Redis (``REDIS_URL``): its sockets, frames,
handshakes refused by reason, whether it drains, and what its ``/healthz``
checks say (:func:`worker_snapshot`, read from this process's
``switchyard.metrics``). Each snapshot is a key ``<prefix>:ops:worker:<id>``
that expires after :data:`REPORT_TTL` seconds, so a worker that dies drops off
the page within that time and a new one appears at its first report. Nothing
needs Prometheus.

**Page.** :class:`OpsPageMiddleware` answers ``SWITCHYARD_OPS_PATH`` (default
``/ops/``) on gunicorn, before the project's URLs: a Django-rendered page for
staff users (others are sent to ``LOGIN_URL``). Its script opens
``<first WebSocket prefix>switchyard/ops/``, which ``switchyard.asgi`` routes
to :class:`OpsConsumer` (behind the Origin allowlist, with Channels' session
authentication): once a second it sends every live worker's snapshot
(:func:`stack_snapshot`) as one JSON text frame, ``{"type": "stack",
"workers": [...], "time": UNIX seconds}``. A socket of a user who is not staff
is closed with 4403. docs/operations.md describes the page.
"""

import asyncio
import json
import logging
import os
import threading
import time

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.template import Context, Engine
from django.utils.crypto import get_random_string
from switchyard import metrics, redis_connections
from switchyard.websocket import log_connection
from switchyard.worker import worker_id

logger = logging.getLogger(__name__)

# Seconds between a worker's reports, and how long a report lives in Redis.
REPORT_INTERVAL = 2.0
REPORT_TTL = 6
# Seconds between the frames the page receives.
PUSH_INTERVAL = 1.0
# Close code for a socket whose user is not staff (the chat's 4403, docs/protocol.md).
CLOSE_FORBIDDEN = 4403
TEMPLATE = os.path.join(os.path.dirname(__file__), "templates", "switchyard", "ops.html")


def _key_prefix():
    return f"{redis_connections.key_prefix_setting()}:ops:worker:"


def _index_key():
    """The sorted set of reporting workers (member: worker id, score: Unix time of its latest report)."""
    return f"{redis_connections.key_prefix_setting()}:ops:workers"


def websocket_path():
    """Return the ops page's WebSocket path (str): under the first ``WEBSOCKET_PATH_PREFIXES`` entry."""
    return f"{settings.WEBSOCKET_PATH_PREFIXES[0]}switchyard/ops/"


def _samples(metric, **labels):
    """Sum (float) of ``metric``'s samples (a prometheus_client instrument) whose labels include ``labels``.

    Reads the instrument itself, not the registry, so the dependency checks
    (``metrics.DependencyCollector``) do not run for it.
    """
    return sum(sample.value for family in metric.collect() for sample in family.samples
               if not sample.name.endswith("_created") and all(sample.labels.get(k) == v for k, v in labels.items()))


def worker_snapshot():
    """Return this worker's snapshot (dict, JSON-ready).

    Keys: ``worker`` (``"host:pid"``), ``server`` (daphne/uvicorn),
    ``sockets`` (open WebSockets), ``frames_in``/``frames_out`` and
    ``accepted`` (totals since start), ``refused`` ({reason: total}),
    ``draining`` (bool), ``dependencies`` ({name: "ok", "stale" or the error's
    name}: ``switchyard.metrics.dependencies()``, checked every 2 s), ``time``
    (Unix seconds).
    """
    refused = {}
    for family in metrics.WEBSOCKET_HANDSHAKES.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("outcome") == "refused":
                refused[sample.labels["reason"]] = refused.get(sample.labels["reason"], 0) + int(sample.value)
    return {
        "worker": worker_id(),
        "server": settings.ASGI_SERVER,
        "sockets": int(_samples(metrics.WEBSOCKET_CONNECTIONS)),
        "frames_in": int(_samples(metrics.WEBSOCKET_FRAMES, direction="in")),
        "frames_out": int(_samples(metrics.WEBSOCKET_FRAMES, direction="out")),
        "accepted": int(_samples(metrics.WEBSOCKET_HANDSHAKES, outcome="accepted")),
        "refused": refused,
        "draining": metrics.draining(),
        "dependencies": metrics.dependencies(),
        "time": time.time(),
    }


class Reporter(threading.Thread):
    """Write this worker's snapshot to Redis every :data:`REPORT_INTERVAL` seconds (a daemon thread).

    A failed write (Redis down) is logged once until the next success; the
    worker's entry then expires from the page, and the page's own worker shows
    the Redis error in its dependencies.
    """

    def __init__(self):
        super().__init__(name="ops reporter", daemon=True)
        self.client = redis_connections.sync_client(settings.REDIS_URL, timeout=redis_connections.HEALTH_TIMEOUT)
        self.failing = False

    def run(self):
        while True:
            try:
                snapshot = worker_snapshot()
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.set(_key_prefix() + snapshot["worker"], json.dumps(snapshot), ex=REPORT_TTL)
                    pipe.zadd(_index_key(), {snapshot["worker"]: snapshot["time"]})
                    # Workers silent for a minute leave the index (their snapshot expired long ago).
                    pipe.zremrangebyscore(_index_key(), "-inf", snapshot["time"] - 60)
                    pipe.execute()
                self.failing = False
            except Exception as exc:  # never let the page's bookkeeping end the thread
                if not self.failing:
                    logger.warning("ops: cannot report this worker (%s: %s)", type(exc).__name__, exc)
                self.failing = True
            time.sleep(REPORT_INTERVAL)


def start_reporter():
    """Start this worker's :class:`Reporter` (once per process); return it, or None when the ops page is off."""
    if not settings.SWITCHYARD_OPS_PATH:
        return None
    reporter = Reporter()
    reporter.start()
    return reporter


def stack_snapshot(client=None):
    """Return every live worker's latest snapshot (list of dicts, sorted by worker id) from Redis.

    Raises ``redis.RedisError`` when Redis cannot be reached.
    """
    client = client or redis_connections.sync_client(settings.REDIS_URL, timeout=redis_connections.HEALTH_TIMEOUT)
    # The index, not a SCAN: Redis also holds the channel layer's and presence's keys.
    workers = client.zrangebyscore(_index_key(), time.time() - REPORT_TTL, "+inf")
    keys = [_key_prefix() + (worker.decode() if isinstance(worker, bytes) else worker) for worker in workers]
    values = client.mget(keys) if keys else []
    workers = [json.loads(value) for value in values if value]
    return sorted(workers, key=lambda worker: worker["worker"])


class OpsConsumer(AsyncWebsocketConsumer):
    """Push the stack's snapshot to a staff user's ops page every :data:`PUSH_INTERVAL` seconds.

    Frames: ``{"type": "stack", "workers": [snapshot, ...], "self": snapshot,
    "time": s}``; ``self`` is the worker holding this socket, and when Redis
    cannot be read ``workers`` is ``[self]`` and ``error`` names the error, so
    the page still shows what this worker sees. Not staff (checked at the
    handshake): accept, then close with 4403. If building a frame fails
    otherwise, the error is logged and the socket closed with 1011; the page
    reconnects.
    """

    pusher = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            log_connection("reject", self.scope, reason="not_staff", code=CLOSE_FORBIDDEN)
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        self.client = redis_connections.sync_client(settings.REDIS_URL, timeout=redis_connections.HEALTH_TIMEOUT)
        self.pusher = asyncio.ensure_future(self.push())

    async def push(self):
        """Send a ``stack`` frame every :data:`PUSH_INTERVAL` seconds until the socket closes."""
        try:
            while True:
                own = worker_snapshot()  # memory only: this process's instruments and cached checks
                frame = {"type": "stack", "self": own, "time": time.time()}
                try:
                    frame["workers"] = await sync_to_async(stack_snapshot, thread_sensitive=False)(self.client)
                except Exception as exc:  # Redis down: the page still gets this worker's view
                    frame["workers"] = [own]
                    frame["error"] = f"{type(exc).__name__}: {exc}"
                await self.send(text_data=json.dumps(frame))
                await asyncio.sleep(PUSH_INTERVAL)
        except asyncio.CancelledError:
            raise
        except OSError:
            pass  # the client left (ClientDisconnected); disconnect() cleans up
        except Exception:
            logger.exception("ops: closing the page's socket with 1011")
            await self.close(code=1011)

    async def disconnect(self, code):
        if self.pusher is not None:
            self.pusher.cancel()
        client = getattr(self, "client", None)
        if client is not None:
            await sync_to_async(client.close, thread_sensitive=False)()


def ops_page(request):
    """The ops page (an ``HttpResponse``) for a staff user; others are redirected to ``LOGIN_URL``."""
    user = getattr(request, "user", None)
    if user is None:
        return HttpResponse("the ops page needs django.contrib.auth's AuthenticationMiddleware", status=404,
                            content_type="text/plain")
    if not (user.is_authenticated and user.is_staff):
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    nonce = get_random_string(24)
    with open(TEMPLATE) as source:
        template = Engine(autoescape=True).from_string(source.read())
    html = template.render(Context({"nonce": nonce, "websocket_path": websocket_path(), "user": user.get_username()}))
    response = HttpResponse(html)
    # Its own policy: the page's one script and style by nonce, sockets to this site only.
    response["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
        "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    response["Cache-Control"] = "no-store"
    return response


class OpsPageMiddleware:
    """Answer ``SWITCHYARD_OPS_PATH`` with :func:`ops_page`; pass everything else on.

    Sits after the project's middleware (it needs ``request.user``), so it
    works whatever URLs the project has.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SWITCHYARD_OPS_PATH and request.path == settings.SWITCHYARD_OPS_PATH:
            return ops_page(request)
        return self.get_response(request)
