"""Settings of the unit tests (pytest-django): the chat example through Switchyard's
settings layer, with an in-memory database and channel layer.

Stack tests in ``tests/`` start real processes with the real settings instead,
so nothing here may leak into ``os.environ`` (their processes inherit it).
"""

import os

_borrowed = {"SECRET_KEY": "unit-tests-only-not-a-secret", "SWITCHYARD_PROJECT_SETTINGS": "chatsite.settings"}
_borrowed = {name: value for name, value in _borrowed.items() if name not in os.environ}
os.environ.update(_borrowed)

from switchyard.settings import *  # noqa: E402,F403

for _name in _borrowed:
    del os.environ[_name]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Nothing listens on port 1: /healthz must report Redis as down.
REDIS_URL = "redis://127.0.0.1:1/0"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
