"""HTTP routes of the chat app (served by gunicorn)."""

from django.urls import path, register_converter

from chat import api, views
from chat.models import ROOM_SLUG_PATTERN


class RoomSlugConverter:
    """Path converter for room slugs (see ``chat.models.ROOM_SLUG_PATTERN``)."""

    regex = ROOM_SLUG_PATTERN

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(RoomSlugConverter, "room")

urlpatterns = [
    path("", views.index, name="index"),
    path("chat/<room:room>/", views.room, name="room"),
    path("api/rooms/<room:room>/messages", api.messages_view, name="api-messages"),
]
