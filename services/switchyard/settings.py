"""Settings of the Switchyard project, read once, here, from the environment.

Every delivery path (native ``scripts/stack``, compose, Ansible) configures the
project only through the environment variables below; ``.env.example``
lists them with their meaning. Values are parsed with django-environ.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# --- Core -------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-debug-only-key"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Origins whose pages may open WebSockets (Channels' OriginValidator patterns:
# "chat.example.com", ".example.com", "https://chat.example.com"). Never "*"
# in production: `check --deploy` refuses it.
WEBSOCKET_ALLOWED_ORIGINS = env.list("WEBSOCKET_ALLOWED_ORIGINS", default=ALLOWED_HOSTS)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves ASGI in development
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "switchyard.apps.SwitchyardConfig",
    "chat.apps.ChatConfig",
]

MIDDLEWARE = [
    "switchyard.health.HealthCheckMiddleware",  # first: probes by IP skip ALLOWED_HOSTS
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "switchyard.urls"
WSGI_APPLICATION = "switchyard.wsgi.application"
ASGI_APPLICATION = "switchyard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# PostgreSQL in the compose and Ansible stacks; SQLite is the embedded default of
# the native mode, tuned so that gunicorn and several ASGI workers can write to
# it at once (WAL, a busy timeout, and write locks taken at BEGIN).

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Seconds a connection is kept between requests (and between a consumer's
# database calls), for either engine. 0 reopens one per request: for SQLite
# that is a file open, the PRAGMAs above and Django's function registration
# per chat message, ~15% of an ASGI worker's CPU in the fan-out profile
# (docs/benchmarks.md, "Profile").
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and the channel layer ---------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        # switchyard.layers.RedisChannelLayer: channels_redis' core layer (lists,
        # capacity, expiry) whose receive survives a consumer's cancellation
        # (see that module); or channels_redis.pubsub.RedisPubSubChannelLayer
        # (Redis pub/sub; ignores capacity and expiry). scripts/bench compares them.
        "BACKEND": env.str("CHANNEL_LAYER_BACKEND", default="switchyard.layers.RedisChannelLayer"),
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, the same
            # as channels_redis' 5 s BZPOPMIN: idle receives then fail with
            # "Timeout reading". Read timeout above the blocking pop; connect fast.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 3}],
            # Messages waiting per channel before channels_redis drops new ones.
            "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
            # Seconds an undelivered message lives in Redis.
            "expiry": env.int("CHANNEL_LAYER_EXPIRY", default=60),
            "prefix": env.str("CHANNEL_LAYER_PREFIX", default="switchyard"),
        },
    },
}

# --- Auth, sessions, security --------------------------------------------------

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# nginx is the only client of gunicorn and the ASGI workers and always sets
# X-Forwarded-Proto, so Django may trust it to tell HTTPS requests apart.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# HTTPS: true where nginx terminates TLS (compose prod, Ansible). It makes the
# session and CSRF cookies Secure and turns on HSTS.
HTTPS = env.bool("HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
# nginx redirects port 80 to 443 before Django sees it; this catches anything
# that reaches Django over plain HTTP anyway (/healthz is answered before it).
SECURE_SSL_REDIRECT = HTTPS
# Preloading HSTS is a per-domain commitment (hstspreload.org): opt in with
# SECURE_HSTS_PRELOAD=true. Until then Django's reminder (W021) is silenced.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- Internationalisation, static files --------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# collectstatic writes here and nginx serves it straight from disk.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# --- ASGI workers ------------------------------------------------------------
# Read by ``manage.py runasgi``, which starts daphne or uvicorn with them.

ASGI_SERVER = env.str("ASGI_SERVER", default="daphne")
# Seconds a socket may be idle before the server pings it; nginx's
# proxy_read_timeout for /ws/ must stay above this.
ASGI_PING_INTERVAL = env.int("ASGI_PING_INTERVAL", default=20)
# Seconds to wait for the pong before closing the socket.
ASGI_PING_TIMEOUT = env.int("ASGI_PING_TIMEOUT", default=20)
# Seconds a worker gives its sockets to close (1012) after SIGTERM before it
# exits; supervisors must wait longer (supervisord stopwaitsecs, compose
# stop_grace_period, systemd TimeoutStopSec).
ASGI_DRAIN_TIMEOUT = env.int("ASGI_DRAIN_TIMEOUT", default=10)
# Largest incoming WebSocket message the ASGI server accepts, in bytes.
WEBSOCKET_MAX_MESSAGE_BYTES = env.int("WEBSOCKET_MAX_MESSAGE_BYTES", default=64 * 1024)

# --- Chat ----------------------------------------------------------------------

# Longest message body accepted, in characters (Unicode code points).
CHAT_MAX_BODY_CHARS = env.int("CHAT_MAX_BODY_CHARS", default=2000)
# Messages in the welcome frame's history, at most.
CHAT_HISTORY_LIMIT = env.int("CHAT_HISTORY_LIMIT", default=50)
# A reconnecting client that missed at most this many messages gets all of
# them in its welcome ("recovered": true); beyond it, it reloads the latest.
CHAT_RECOVERY_WINDOW = env.int("CHAT_RECOVERY_WINDOW", default=1000)
# Rate limits of messages sent on sockets, in the ``limits`` notation
# ("10/second", "100/minute"): per connection (worker memory) and per user
# (Redis, across workers). Over a limit: an error frame; more than
# CHAT_RATE_LIMIT_TOLERANCE refused messages within a minute: close 1008.
CHAT_RATE_LIMIT_PER_CONNECTION = env.str("CHAT_RATE_LIMIT_PER_CONNECTION", default="10/second")
CHAT_RATE_LIMIT_PER_USER = env.str("CHAT_RATE_LIMIT_PER_USER", default="20/second")
CHAT_RATE_LIMIT_TOLERANCE = env.int("CHAT_RATE_LIMIT_TOLERANCE", default=10)
# Open sockets per user across every worker (Redis); one more is closed with 1008.
CHAT_MAX_SOCKETS_PER_USER = env.int("CHAT_MAX_SOCKETS_PER_USER", default=20)
# Messages one ``GET /api/rooms/<room>/messages`` page returns, at most.
CHAT_API_PAGE_LIMIT = env.int("CHAT_API_PAGE_LIMIT", default=500)

# --- Presence (chat.presence) ------------------------------------------------
# Seconds a socket stays in a room's presence after its worker's last
# heartbeat; a killed worker's users leave within TTL + HEARTBEAT.
PRESENCE_TTL = env.int("PRESENCE_TTL", default=30)
# Seconds between a worker's presence heartbeats.
PRESENCE_HEARTBEAT = env.int("PRESENCE_HEARTBEAT", default=10)
# Seconds over which a worker gathers a room's joins and leaves into one
# presence announcement (the first change in a quiet room goes out at once).
PRESENCE_ANNOUNCE_INTERVAL = env.float("PRESENCE_ANNOUNCE_INTERVAL", default=1.0)

# --- Logging -----------------------------------------------------------------

LOGGING = {
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
}
