"""WebSocket routes of the chat example, mounted by ``chatsite.asgi`` (under ``AuthMiddlewareStack``; every deployment adds the Origin allowlist in front)."""

from django.urls import re_path

from chat.consumers import ChatConsumer
from chat.models import ROOM_SLUG_PATTERN

websocket_urlpatterns = [
    re_path(rf"^ws/chat/(?P<room>{ROOM_SLUG_PATTERN})/$", ChatConsumer.as_asgi()),
]
