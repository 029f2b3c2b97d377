"""Settings of the chat example project (the default project Switchyard deploys).

Like any project Switchyard runs, these are the project's own settings: apps,
URLs, templates and the chat app's knobs. The deployment's values (secret
key, hosts, database, channel layer, static root, TLS, logging) are applied
over them by Switchyard's settings layer, ``switchyard.settings``, which every
process uses (docs/your-project.md). The chat app's own settings are read
from the environment here, once, with django-environ (``.env.example``).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Development values; Switchyard's layer replaces them in every deployment.
SECRET_KEY = "django-insecure-chat-example-development-only"  # noqa: S105 - replaced by the layer
DEBUG = True
ALLOWED_HOSTS = []

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves ASGI in development
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "chat.apps.ChatConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chatsite.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
WSGI_APPLICATION = "chatsite.wsgi.application"
ASGI_APPLICATION = "chatsite.asgi.application"

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

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Presence and the per-user limits talk to Redis directly (Switchyard's layer
# sets REDIS_URL from the deployment).
REDIS_URL = "redis://127.0.0.1:6379/0"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"

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
