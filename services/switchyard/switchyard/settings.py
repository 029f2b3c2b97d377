"""Switchyard's settings layer: the project's own settings, with the deployment's values applied.

Every process of a deployment runs with ``DJANGO_SETTINGS_MODULE=switchyard.settings``.
This module imports the project's settings module, named by
``SWITCHYARD_PROJECT_SETTINGS`` (e.g. ``mysite.settings``; by default the one
the ``manage.py`` in ``SWITCHYARD_PROJECT_DIR``, else the working directory,
sets), copies every setting it defines, then
applies the deployment's values from the environment (over the shared
defaults in ``defaults.env``). The project's file is never edited.

What is applied, and when (docs/your-project.md has the same table):

==========================  ==================================================================
setting                     value
==========================  ==================================================================
``SECRET_KEY``              ``SECRET_KEY``; required unless ``DEBUG`` (then the project's)
``DEBUG``                   ``DEBUG`` (default false: a tutorial's ``DEBUG = True`` is off)
``ALLOWED_HOSTS``           ``ALLOWED_HOSTS`` (default localhost, 127.0.0.1, [::1])
``CSRF_TRUSTED_ORIGINS``    ``CSRF_TRUSTED_ORIGINS`` when set, else the project's
``DATABASES``               ``DATABASE_URL`` when set, else the project's
``CHANNEL_LAYERS``          Switchyard's fan-out layer at ``REDIS_URL``
``STATIC_ROOT``             ``STATIC_ROOT`` (nginx serves it), default ``<project>/staticfiles``
proxy and TLS               ``SECURE_PROXY_SSL_HEADER``; with ``HTTPS``: Secure cookies, HSTS,
                            SSL redirect
``LOGGING``                 Switchyard's (plain lines, JSON connection log)
``MIDDLEWARE``              ``switchyard.health.HealthCheckMiddleware`` put first, then
                            django-prometheus' pair around the rest (HTTP metrics)
``INSTALLED_APPS``          ``switchyard`` added (runasgi, ensure_superuser, the checks), and
                            ``django_prometheus``
==========================  ==================================================================

A project keeps control of any of these by naming it in ``SWITCHYARD_KEEP_SETTINGS``:
a list in its settings module, or a comma-separated environment variable.
``MIDDLEWARE`` and ``INSTALLED_APPS`` always get Switchyard's entries.

Raises ``ImproperlyConfigured`` with one readable message when the project's
settings are not named or cannot be imported, or ``SECRET_KEY`` is missing
with ``DEBUG`` off.
"""

import importlib
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from switchyard import redis_connections
from switchyard.defaults import env as _env
from switchyard.project import ProjectError, settings_module

env = _env()

# --- The project's own settings ------------------------------------------------

PROJECT_SETTINGS = env.str("SWITCHYARD_PROJECT_SETTINGS", default="")
if not PROJECT_SETTINGS:
    try:
        PROJECT_SETTINGS = settings_module(env.str("SWITCHYARD_PROJECT_DIR", default=".") or ".")
    except ProjectError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
if PROJECT_SETTINGS == __name__:
    raise ImproperlyConfigured("SWITCHYARD_PROJECT_SETTINGS names switchyard.settings itself: name the project's")
try:
    _project = importlib.import_module(PROJECT_SETTINGS)
except ModuleNotFoundError as exc:
    # The module itself (or its package) is missing; an import error raised
    # inside the project's settings propagates as it is, with its location.
    if exc.name is None or not (PROJECT_SETTINGS == exc.name or PROJECT_SETTINGS.startswith(exc.name + ".")):
        raise
    raise ImproperlyConfigured(
        f"the project's settings module {PROJECT_SETTINGS!r} cannot be imported: {exc} "
        f"(is the project's directory the working directory or on PYTHONPATH?)"
    ) from exc
globals().update({name: value for name, value in vars(_project).items() if name.isupper()})

KEEP = set(env.list("SWITCHYARD_KEEP_SETTINGS", default=[])) | set(getattr(_project, "SWITCHYARD_KEEP_SETTINGS", []))
PROJECT_DIR = Path(_project.__file__).resolve().parent.parent


def _apply(name, value):
    """Set setting ``name`` to ``value`` unless the project keeps it (``SWITCHYARD_KEEP_SETTINGS``)."""
    if name not in KEEP:
        globals()[name] = value


def _project_value(name, default=None):
    return getattr(_project, name, default)


# --- Core -------------------------------------------------------------------

_apply("DEBUG", env.bool("DEBUG", default=False))
if "SECRET_KEY" not in KEEP:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if not SECRET_KEY:
        if not globals().get("DEBUG"):
            raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (the project's own key is not used).")
        SECRET_KEY = _project_value("SECRET_KEY", "django-insecure-debug-only-key")

_apply("ALLOWED_HOSTS", env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"]))
# Origins whose pages may open WebSockets (Channels' OriginValidator patterns:
# "chat.example.com", ".example.com", "https://chat.example.com"). Every
# project's WebSocket routes are guarded by it (switchyard.asgi). Never "*" in
# production: `check --deploy` refuses it.
_apply("WEBSOCKET_ALLOWED_ORIGINS", env.list("WEBSOCKET_ALLOWED_ORIGINS", default=globals().get("ALLOWED_HOSTS", [])))
if "CSRF_TRUSTED_ORIGINS" in env.ENVIRON:
    _apply("CSRF_TRUSTED_ORIGINS", env.list("CSRF_TRUSTED_ORIGINS"))

# Switchyard's app (management commands, deployment checks) and the health
# middleware, first so that probes by IP address skip ALLOWED_HOSTS;
# django-prometheus' middleware around everything, for the HTTP metrics
# (served on the metrics ports, switchyard.metrics).
_project_apps = [app for app in _project_value("INSTALLED_APPS", []) if app != "django_prometheus"]
INSTALLED_APPS = [*_project_apps, "django_prometheus", "switchyard.apps.SwitchyardConfig"]
_PROMETHEUS_MIDDLEWARE = ("django_prometheus.middleware.PrometheusBeforeMiddleware",
                          "django_prometheus.middleware.PrometheusAfterMiddleware")
MIDDLEWARE = [
    "switchyard.health.HealthCheckMiddleware",  # so probes are not counted as requests either
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *(entry for entry in _project_value("MIDDLEWARE", []) if entry not in _PROMETHEUS_MIDDLEWARE),
    "switchyard.ops.OpsPageMiddleware",  # after the project's: it needs request.user
    # django-prometheus' after-middleware with bounded method labels (switchyard.http_metrics).
    "switchyard.http_metrics.HttpMetricsMiddleware",
]
# The live operations page for staff users (switchyard.ops); empty: no page, no socket.
SWITCHYARD_OPS_PATH = env.str("SWITCHYARD_OPS_PATH", default="/ops/")
# One prefix for every metric (django-prometheus' become switchyard_django_http_*).
PROMETHEUS_METRIC_NAMESPACE = "switchyard"
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Database -----------------------------------------------------------------
# PostgreSQL in the compose and Ansible stacks; SQLite is the embedded default of
# the native mode, tuned so that gunicorn and several ASGI workers can write to
# it at once (WAL, a busy timeout, and write locks taken at BEGIN).

if "DATABASE_URL" in env.ENVIRON:
    _apply("DATABASES", {"default": env.db("DATABASE_URL")})
if "DATABASES" not in KEEP and "default" in globals().get("DATABASES", {}):
    _database = DATABASES["default"]  # noqa: F821 - the project's or DATABASE_URL's
    if _database["ENGINE"] == "django.db.backends.sqlite3":
        _database.setdefault("OPTIONS", {}).update(
            {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    # Seconds a connection is kept between requests (and between a consumer's
    # database calls). 0 reopens one per request: for SQLite that is a file
    # open, the PRAGMAs above and Django's function registration per chat
    # message, ~15% of an ASGI worker's CPU in the fan-out profile
    # (docs/benchmarks-profile.md, "Profile").
    if _database["ENGINE"] == "django.db.backends.postgresql":
        # Seconds to wait for a connection: an unreachable host fails requests,
        # /healthz and the dependency metric quickly instead of after minutes.
        _database.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
    _database.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    _database.setdefault("CONN_HEALTH_CHECKS", True)

# --- Redis and the channel layer ---------------------------------------------

# One Redis server (redis://) or a Sentinel-managed primary (redis+sentinel://);
# switchyard.redis_connections parses it and makes every client.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# The channel layer's shards (URLs of either form separated by spaces: a
# Sentinel URL holds commas): several independent Redis servers, channels and
# groups spread by consistent hashing. Default: REDIS_URL alone.
CHANNEL_LAYER_REDIS_URLS = env.str("CHANNEL_LAYER_REDIS_URLS", default="").split() or [REDIS_URL]
try:
    redis_connections.parse_url(REDIS_URL)
    _layer_hosts = redis_connections.channel_layer_hosts(CHANNEL_LAYER_REDIS_URLS)
except redis_connections.RedisURLError as exc:
    raise ImproperlyConfigured(f"REDIS_URL / CHANNEL_LAYER_REDIS_URLS: {exc}") from None

_apply(
    "CHANNEL_LAYERS",
    {
        "default": {
            # switchyard.fanout.FanoutChannelLayer: Redis pub/sub, one PUBLISH per
            # group message and one read per worker, a reconnect signal, direct
            # delivery (see that module). Or switchyard.layers.RedisChannelLayer:
            # channels_redis' core layer (lists in Redis, per socket) with a
            # receive that survives cancellation. scripts/bench compares them.
            "BACKEND": env.str("CHANNEL_LAYER_BACKEND", default="switchyard.fanout.FanoutChannelLayer"),
            "CONFIG": {
                # One entry per shard; timeouts in switchyard.redis_connections.
                "hosts": _layer_hosts,
                # Messages waiting per channel before channels_redis drops new ones.
                "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
                # Seconds an undelivered message lives in Redis.
                "expiry": env.int("CHANNEL_LAYER_EXPIRY", default=60),
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="switchyard"),
            },
        },
    },
)

if "CHANNEL_LAYERS" in KEEP:
    # The project's own layer: /healthz checks REDIS_URL only, never shards it does not use.
    CHANNEL_LAYER_REDIS_URLS = [REDIS_URL]

# --- Proxy and TLS -------------------------------------------------------------

# nginx is the only client of gunicorn and the ASGI workers and always sets
# X-Forwarded-Proto, so Django may trust it to tell HTTPS requests apart.
_apply("SECURE_PROXY_SSL_HEADER", ("HTTP_X_FORWARDED_PROTO", "https"))

# HTTPS: true where nginx terminates TLS (compose prod, Ansible). It makes the
# session and CSRF cookies Secure and turns on HSTS.
HTTPS = env.bool("HTTPS", default=False)
_apply("SESSION_COOKIE_SECURE", HTTPS)
_apply("CSRF_COOKIE_SECURE", HTTPS)
_apply("SECURE_HSTS_SECONDS", env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0))
_apply("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
# nginx redirects port 80 to 443 before Django sees it; this catches anything
# that reaches Django over plain HTTP anyway (/healthz is answered before it).
_apply("SECURE_SSL_REDIRECT", HTTPS)
# Preloading HSTS is a per-domain commitment (hstspreload.org): opt in with
# SECURE_HSTS_PRELOAD=true. Until then Django's reminder (W021) is silenced.
_apply("SECURE_HSTS_PRELOAD", env.bool("SECURE_HSTS_PRELOAD", default=False))
if not globals().get("SECURE_HSTS_PRELOAD", False):
    SILENCED_SYSTEM_CHECKS = [*_project_value("SILENCED_SYSTEM_CHECKS", []), "security.W021"]

# --- Static files -----------------------------------------------------------------

if not globals().get("STATIC_URL"):
    STATIC_URL = "/static/"
# collectstatic writes here and nginx serves it straight from disk.
_apply("STATIC_ROOT", Path(env.str("STATIC_ROOT", default=str(PROJECT_DIR / "staticfiles"))))

# --- ASGI workers ------------------------------------------------------------
# Read by ``manage.py runasgi``, which starts daphne or uvicorn with them.
# Defaults from defaults.env (the one source the delivery paths share).

ASGI_SERVER = env.str("ASGI_SERVER", default="daphne")
# uvicorn's WebSocket implementation (its --ws): "websockets" (the default),
# "websockets-sansio" or "wsproto" (installed separately); docs/benchmarks.md
# compares their memory per socket. Ignored by daphne.
ASGI_UVICORN_WS = env.str("ASGI_UVICORN_WS", default="websockets")
# TCP port a worker binds unless runasgi is given --port.
ASGI_PORT = env.int("ASGI_PORT")
# Seconds a socket may be idle before the server pings it; nginx's
# proxy_read_timeout for WebSockets stays above this.
ASGI_PING_INTERVAL = env.int("ASGI_PING_INTERVAL")
# Seconds to wait for the pong before closing the socket.
ASGI_PING_TIMEOUT = env.int("ASGI_PING_TIMEOUT")
# Seconds a worker gives its sockets to close (1012) after SIGTERM before it
# exits; supervisors must wait longer (supervisord stopwaitsecs, compose
# stop_grace_period, systemd TimeoutStopSec).
ASGI_DRAIN_TIMEOUT = env.int("ASGI_DRAIN_TIMEOUT")
# URL path prefixes served by the ASGI pool (nginx routes them there).
WEBSOCKET_PATH_PREFIXES = env.list("WEBSOCKET_PATH_PREFIXES")
# Each process serves Prometheus metrics on its port + this (0: none;
# switchyard.metrics).
METRICS_PORT_OFFSET = env.int("METRICS_PORT_OFFSET")
# Largest incoming WebSocket message the ASGI server accepts, in bytes.
WEBSOCKET_MAX_MESSAGE_BYTES = env.int("WEBSOCKET_MAX_MESSAGE_BYTES", default=64 * 1024)
# Slow readers (switchyard.websocket.SlowReaderGuard, switchyard.daphne_server):
# a client that has not taken what was sent to it for this many seconds while
# more keeps coming is closed with 4408 (it resumes by offset when it
# reconnects), so a worker never buffers without bound for one socket. 0: off.
WEBSOCKET_SLOW_READER_SECONDS = env.float("WEBSOCKET_SLOW_READER_SECONDS", default=10.0)
# ...or sooner, once this many bytes wait for it beyond the socket's own
# buffers (daphne only: it holds them in memory; uvicorn makes the sender wait).
WEBSOCKET_SLOW_READER_BYTES = env.int("WEBSOCKET_SLOW_READER_BYTES", default=1024 * 1024)

# --- Logging -----------------------------------------------------------------

_apply(
    "LOGGING",
    {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
            # Connection events as one JSON object per line (switchyard.websocket.log_connection).
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
            },
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
            "connections": {"class": "logging.StreamHandler", "formatter": "json"},
        },
        "loggers": {
            "switchyard.connections": {"handlers": ["connections"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    },
)
