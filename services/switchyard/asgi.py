"""ASGI entrypoint for the WebSocket workers (daphne or uvicorn, via ``manage.py runasgi``).

nginx sends only ``/ws/`` here. Every WebSocket route is wrapped, outermost
first, in ``OriginAllowlist`` (Channels' ``OriginValidator``: the handshake's
Origin must match ``WEBSOCKET_ALLOWED_ORIGINS``, which defaults to
``ALLOWED_HOSTS``, else 403, logged) and ``AuthMiddlewareStack`` (the Django
session cookie becomes ``scope["user"]``). ``manage.py check --deploy``
fails if a websocket route is not wrapped in an Origin validator. Plain HTTP is answered by Django too, so a
container or unit healthcheck can ask a worker for ``/healthz`` directly.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "switchyard.settings")

# Set up Django (apps, settings) before importing code that uses models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from switchyard.websocket import OriginAllowlist  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginAllowlist(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
