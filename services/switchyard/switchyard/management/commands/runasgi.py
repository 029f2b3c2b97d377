"""``manage.py runasgi``: start one ASGI worker (daphne or uvicorn) with Switchyard's flags.

Every delivery path starts its WebSocket workers with this command, so the
server flags (keepalive pings, message size limit, proxy headers, drain) are
written once, here, from settings. uvicorn is ``exec``ed: signals from the
supervisor (supervisord, Docker, systemd) reach it directly. daphne runs in
this process through ``switchyard.daphne_server``, which adds the graceful drain
that daphne lacks (close 1012 on SIGTERM).
"""

import os
import shutil
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

SERVERS = ("daphne", "uvicorn")
APPLICATION = "switchyard.asgi:application"


def server_argv(server, host, port, reload=False):
    """Return the argv (list of str) that starts ``server`` on ``host``:``port``.

    ``server`` is ``"daphne"`` or ``"uvicorn"``; ``port`` an int; ``reload``
    (uvicorn only, for development) restarts on code changes. Ping interval
    and timeout (seconds), the drain timeout (seconds) and the message size
    limit (bytes) come from settings. Raises ``ValueError`` for another server
    name, or for ``reload`` with daphne.
    """
    if reload and server != "uvicorn":
        raise ValueError("--reload needs --server uvicorn (daphne cannot reload)")
    interval, timeout = settings.ASGI_PING_INTERVAL, settings.ASGI_PING_TIMEOUT
    max_bytes = settings.WEBSOCKET_MAX_MESSAGE_BYTES
    if server == "daphne":
        return [
            "daphne",
            "--bind", host,
            "--port", str(port),
            "--ping-interval", str(interval),
            "--ping-timeout", str(timeout),
            "--websocket-max-message-size", str(max_bytes),
            "--websocket-max-frame-size", str(max_bytes),
            "--proxy-headers",
            APPLICATION,
        ]
    if server == "uvicorn":
        return [
            "uvicorn",
            "--host", host,
            "--port", str(port),
            # One process per worker, always: uvicorn would otherwise fork
            # WEB_CONCURRENCY children (gunicorn's variable, set for the stack).
            "--workers", "1",
            "--ws", settings.ASGI_UVICORN_WS,
            "--ws-ping-interval", str(interval),
            "--ws-ping-timeout", str(timeout),
            "--ws-max-size", str(max_bytes),
            "--ws-per-message-deflate", "false",
            "--proxy-headers",
            "--forwarded-allow-ips", "*",
            # switchyard.asgi answers the lifespan itself (the project's is not run,
            # as under daphne): at startup it hooks the drain metric into uvicorn.
            "--lifespan", "on",
            "--timeout-graceful-shutdown", str(settings.ASGI_DRAIN_TIMEOUT),
            *(["--reload"] if reload else []),
            APPLICATION,
        ]
    raise ValueError(f"unknown ASGI server {server!r}; choose one of {', '.join(SERVERS)}")


class Command(BaseCommand):
    help = "Start one ASGI worker (daphne or uvicorn) serving the project through switchyard.asgi:application."

    def add_arguments(self, parser):
        parser.add_argument("--server", choices=SERVERS, default=None, help="default: settings.ASGI_SERVER")
        parser.add_argument("--host", default=None, help="address to bind (default: BIND_ADDRESS or 127.0.0.1)")
        parser.add_argument("--port", type=int, default=None, help="TCP port to bind (default: settings.ASGI_PORT)")
        parser.add_argument("--metrics-port", type=int, default=None,
                            help="port of this worker's /metrics (default: --port + METRICS_PORT_OFFSET; 0: none)")
        parser.add_argument("--reload", action="store_true", help="restart on code changes (uvicorn; development)")

    def handle(self, *args, server=None, host=None, port=None, metrics_port=None, reload=False, **options):
        server = server or settings.ASGI_SERVER
        host = host or os.environ.get("BIND_ADDRESS", "127.0.0.1")
        port = port or settings.ASGI_PORT
        if metrics_port is None:
            metrics_port = port + settings.METRICS_PORT_OFFSET if settings.METRICS_PORT_OFFSET else 0
        # Read by switchyard.asgi when the server imports it (switchyard.metrics, switchyard.ops).
        os.environ["SWITCHYARD_ASGI_WORKER"] = "1"
        os.environ["SWITCHYARD_METRICS_PORT"] = str(metrics_port)
        try:
            argv = server_argv(server, host, port, reload)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if server == "daphne":
            from switchyard.daphne_server import run_daphne

            run_daphne(argv[1:], settings.ASGI_DRAIN_TIMEOUT)
            return
        # The server is installed beside this interpreter (same virtualenv).
        executable = os.path.join(os.path.dirname(sys.executable), argv[0])
        if not os.path.exists(executable):
            executable = shutil.which(argv[0])
        if not executable:
            raise CommandError(f"{argv[0]} is not installed (pip install -r requirements.txt)")
        sys.stdout.flush()
        os.execv(executable, argv)
