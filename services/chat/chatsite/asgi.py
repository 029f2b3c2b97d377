"""ASGI application of the chat example: HTTP through Django, WebSockets to the chat consumer.

Switchyard's ASGI workers serve ``switchyard.asgi.application``, which puts
this application behind the Origin allowlist and the connection log;
``AuthMiddlewareStack`` here turns the session cookie into ``scope["user"]``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

# Set up Django (apps, settings) before importing code that uses models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
