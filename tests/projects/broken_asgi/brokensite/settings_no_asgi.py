"""The fixture's settings without ASGI_APPLICATION at all (Channels' installation step forgotten)."""

from brokensite.settings import *  # noqa: F403

del ASGI_APPLICATION  # noqa: F821
