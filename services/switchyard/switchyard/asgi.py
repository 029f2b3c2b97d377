"""ASGI entrypoint of every ASGI worker: the project's ``ASGI_APPLICATION`` behind Switchyard's guards.

``manage.py runasgi`` serves ``switchyard.asgi:application`` for any project.
nginx sends only the WebSocket path prefixes here. Each WebSocket handshake
passes, outermost first, through ``OriginAllowlist`` (Channels'
``OriginValidator``: the Origin must match ``WEBSOCKET_ALLOWED_ORIGINS``,
which defaults to ``ALLOWED_HOSTS``, else 403, logged), the connection
log, ``SlowReaderGuard`` (a client that stops reading is closed with 4408)
and ``RefuseUnknownRoutes`` (a path no route matches: 403, logged, no
traceback), then reaches the project's application unchanged (its own middleware,
such as ``AuthMiddlewareStack``, included). ``GET /healthz`` is answered by
Django with Switchyard's health middleware, so a container or unit
healthcheck can ask a worker directly whatever the project routes.
Importing it also starts the worker's metrics endpoint (``switchyard.metrics``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "switchyard.settings")

# Sets Django up (apps, settings) before the project's application is imported.
health_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from django.conf import settings  # noqa: E402

from switchyard import metrics, ops  # noqa: E402
from switchyard.project import load_application  # noqa: E402
from switchyard.websocket import ConnectionLog, OriginAllowlist, RefuseUnknownRoutes, SlowReaderGuard  # noqa: E402


class DeploymentGuard:
    """Route ASGI scopes: WebSockets through the guards to ``application``, ``/healthz`` to ``health``, the rest to ``application``.

    ``application`` is the project's ASGI application; ``health`` an ASGI
    application answering ``/healthz`` (Django's, with Switchyard's middleware).
    The ops page's socket (``switchyard.ops.websocket_path()``, when
    ``SWITCHYARD_OPS_PATH`` is set) goes through the same guards to
    ``switchyard.ops.OpsConsumer`` with Channels' session authentication.
    """

    def __init__(self, application, health):
        self.application = application
        ops_consumer = AuthMiddlewareStack(ops.OpsConsumer.as_asgi()) if settings.SWITCHYARD_OPS_PATH else None
        ops_path = ops.websocket_path()

        async def route(scope, receive, send):
            if ops_consumer is not None and scope.get("path") == ops_path:
                return await ops_consumer(scope, receive, send)
            return await application(scope, receive, send)

        guarded = RefuseUnknownRoutes(route)
        if settings.ASGI_SERVER != "daphne":  # daphne's sends never wait; switchyard.daphne_server bounds it
            guarded = SlowReaderGuard(guarded)
        self.websocket = OriginAllowlist(ConnectionLog(guarded))
        self.health = health

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            return await self.websocket(scope, receive, send)
        if scope["type"] == "http" and scope.get("path") == "/healthz":
            return await self.health(scope, receive, send)
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        return await self.application(scope, receive, send)

    @staticmethod
    async def lifespan(receive, send):
        """Answer the ASGI lifespan protocol (uvicorn; daphne has none); the project's application never sees it.

        At startup uvicorn's signal handlers are installed, and this runs in
        the main thread, so the drain metric can hook into them
        (``switchyard.metrics.watch_uvicorn_drain``).
        """
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                metrics.watch_uvicorn_drain()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


application = DeploymentGuard(load_application("ASGI_APPLICATION"), health_application)

if os.environ.get("SWITCHYARD_ASGI_WORKER"):  # set by runasgi: a worker, not a test importing this
    # This worker's /metrics, on the port runasgi chose (switchyard.metrics),
    # and its reports for the ops page (switchyard.ops).
    metrics.start_dependency_monitor()
    metrics.serve_worker_metrics(int(os.environ.get("SWITCHYARD_METRICS_PORT") or 0),
                                 addr=os.environ.get("BIND_ADDRESS", "127.0.0.1"))
    ops.start_reporter()
