"""WebSocket routes, mounted by ``switchyard.asgi`` under the Origin and auth middleware."""

from django.urls import re_path

from chat.consumers import ChatConsumer
from chat.models import ROOM_SLUG_PATTERN

websocket_urlpatterns = [
    re_path(rf"^ws/chat/(?P<room>{ROOM_SLUG_PATTERN})/$", ChatConsumer.as_asgi()),
]
