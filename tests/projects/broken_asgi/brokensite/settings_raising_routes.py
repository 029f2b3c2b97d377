"""The fixture's settings with an ASGI application whose route module raises on import."""

from brokensite.settings import *  # noqa: F403

ASGI_APPLICATION = "brokensite.raising_asgi.application"
