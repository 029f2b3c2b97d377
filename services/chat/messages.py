"""Storing, reading and delivering chat messages: the plain functions behind the
consumer (``chat.consumers``) and the HTTP API (``chat.api``).

Delivery goes through the channel layer: every socket of a room has joined the
Channels group :func:`group_name`, on whichever ASGI worker holds it, and
:func:`broadcast` sends one event to that group. The event type
``chat.message`` is handled by ``ChatConsumer.chat_message``.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from chat.models import Message, Room
from chat.protocol import validate_body

# Channels routes a group event of this type to the consumer method ``chat_message``.
EVENT_TYPE = "chat.message"


def group_name(room_slug):
    """Return the Channels group name (str) of the room ``room_slug``."""
    return f"chat.{room_slug}"


def serialize(message):
    """Return the wire form (dict) of a :class:`~chat.models.Message`.

    Keys: ``id`` (int), ``room`` (slug), ``user`` (username), ``body``,
    ``sent_at`` (ISO-8601 with offset, UTC).
    """
    return {
        "id": message.pk,
        "room": message.room.slug,
        "user": message.user.get_username(),
        "body": message.body,
        "sent_at": message.sent_at.isoformat(),
    }


def get_or_create_room(room_slug):
    """Return the :class:`~chat.models.Room` named ``room_slug``, creating it on first use."""
    room, _ = Room.objects.get_or_create(slug=room_slug)
    return room


def store_message(room_slug, user, body):
    """Validate and store one message; return its wire form (dict).

    ``user`` is a signed-in Django user. Raises ``chat.protocol.ProtocolError``
    for an invalid body (nothing is stored then).
    """
    body = validate_body(body)
    room = get_or_create_room(room_slug)
    message = Message.objects.create(room=room, user=user, body=body)
    return serialize(message)


def messages_after(room_slug, after=None, limit=None):
    """Return messages of a room as wire dicts, oldest first.

    ``after`` (int or None): only messages with a larger id; None means the
    room's most recent ones. ``limit`` (int, default ``CHAT_HISTORY_LIMIT``):
    at most this many; when more match, the most recent ``limit`` are returned.
    An unknown room has no messages (and is not created).
    """
    limit = settings.CHAT_HISTORY_LIMIT if limit is None else limit
    queryset = Message.objects.filter(room__slug=room_slug).select_related("room", "user")
    if after is not None:
        queryset = queryset.filter(id__gt=after)
    newest_first = list(queryset.order_by("-id")[:limit])
    return [serialize(message) for message in reversed(newest_first)]


def join_room(room_slug, after=None):
    """Create the room on first use and return its welcome history (see :func:`messages_after`)."""
    get_or_create_room(room_slug)
    return messages_after(room_slug, after)


def messages_page(room_slug, after=0, limit=None):
    """Return up to ``limit`` (default ``CHAT_API_PAGE_LIMIT``) messages with id > ``after``, oldest first.

    Unlike :func:`messages_after`, a page starts right after ``after``, so a
    client can walk a long gap page by page.
    """
    limit = settings.CHAT_API_PAGE_LIMIT if limit is None else limit
    queryset = (
        Message.objects.filter(room__slug=room_slug, id__gt=after)
        .select_related("room", "user")
        .order_by("id")[:limit]
    )
    return [serialize(message) for message in queryset]


async def broadcast(message):
    """Send one message (wire dict) to every socket of its room, on every worker.

    Raises whatever the channel layer raises when Redis cannot be reached.
    """
    layer = get_channel_layer()
    await layer.group_send(group_name(message["room"]), {"type": EVENT_TYPE, "message": message})


def broadcast_sync(message):
    """Synchronous :func:`broadcast`, for WSGI views (gunicorn)."""
    async_to_sync(broadcast)(message)
