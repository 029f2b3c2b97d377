"""Settings of the unit tests (pytest-django): the real settings with an in-memory
database and channel layer.

Stack tests in ``tests/`` start real processes with the real settings instead,
so nothing here may leak into ``os.environ`` (their processes inherit it).
"""

import os

_borrowed_key = "SECRET_KEY" not in os.environ
os.environ.setdefault("SECRET_KEY", "unit-tests-only-not-a-secret")

from switchyard.settings import *  # noqa: E402,F403

if _borrowed_key:
    del os.environ["SECRET_KEY"]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Nothing listens on port 1: /healthz must report Redis as down.
REDIS_URL = "redis://127.0.0.1:1/0"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
