"""Storing, reading and delivering chat messages: the plain functions behind the
consumer (``chat.consumers``) and the HTTP API (``chat.api``).

Delivery goes through the channel layer: every socket of a room has joined the
Channels group :func:`group_name`, on whichever ASGI worker holds it, and
:func:`broadcast` sends one event to that group. The event type
``chat.message`` is handled by ``ChatConsumer.chat_message``.

The channel layer is at-most-once; the database is the record. Every message
has a gapless per-room ``offset``, so a consumer that sees a gap fills it from
here, and a client that reconnects resumes from its last offset
(:func:`welcome`).
"""

import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from chat import metrics
from chat.models import Message, Room, new_epoch
from chat.protocol import encode, message_frame, validate_body

# Channels routes a group event of this type to the consumer method ``chat_message``.
EVENT_TYPE = "chat.message"


def group_name(room_slug):
    """Return the Channels group name (str) of the room ``room_slug``."""
    return f"chat.{room_slug}"


def serialize(message):
    """Return the wire form (dict) of a :class:`~chat.models.Message`.

    Keys: ``id`` (int, unique across rooms), ``room`` (slug), ``offset`` (int,
    position in the room), ``epoch`` (str), ``user`` (username), ``body``,
    ``sent_at`` (ISO-8601 with offset, UTC).
    """
    return {
        "id": message.pk,
        "room": message.room.slug,
        "offset": message.offset,
        "epoch": message.room.epoch,
        "user": message.user.get_username(),
        "body": message.body,
        "sent_at": message.sent_at.isoformat(),
    }


def get_or_create_room(room_slug):
    """Return the :class:`~chat.models.Room` named ``room_slug``, creating it on first use."""
    room, _ = Room.objects.get_or_create(slug=room_slug)
    return room


def store_message(room_slug, user, body):
    """Validate and store one message with the room's next offset; return its wire form (dict).

    ``user`` is a signed-in Django user. The room row is locked for the
    transaction (``SELECT … FOR UPDATE``; SQLite's IMMEDIATE transactions lock
    the database), so offsets are gapless and commit in offset order. Raises
    ``chat.protocol.ProtocolError`` for an invalid body (nothing is stored).
    Three queries when the room exists (lock, update, insert): the room is
    created here only for a room's first message posted before anyone joined.
    """
    body = validate_body(body)
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(slug=room_slug).first()
        if room is None:
            room = Room.objects.select_for_update().get(pk=get_or_create_room(room_slug).pk)
        room.last_offset += 1
        room.save(update_fields=["last_offset"])
        message = Message.objects.create(room=room, user=user, body=body, offset=room.last_offset)
    metrics.MESSAGES_STORED.inc()
    return serialize(message)


def _messages(room, after, upto):
    queryset = Message.objects.filter(room=room, offset__gt=after, offset__lte=upto)
    return queryset.select_related("room", "user").order_by("offset")


def messages_between(room_slug, after, upto):
    """Return the room's messages with ``after < offset <= upto`` (wire dicts, offset order)."""
    room = Room.objects.filter(slug=room_slug).first()
    return [] if room is None else [serialize(m) for m in _messages(room, after, upto)]


def welcome(room_slug, after=None, epoch=None):
    """Create the room on first use and return what a joining socket is owed (dict).

    ``after`` (int or None) and ``epoch`` (str or None) are what the client
    last saw. Returns ``{"epoch", "offset", "recovered", "history"}``:
    ``offset`` is the room's last offset at this moment and ``history`` ends
    there. Recovery succeeds (``recovered: True``, history = every message
    after ``after``) when the epoch matches and at most
    ``CHAT_RECOVERY_WINDOW`` messages were missed; otherwise history is the
    latest ``CHAT_HISTORY_LIMIT`` messages and ``recovered`` is False.
    """
    room = get_or_create_room(room_slug)
    top = room.last_offset
    recoverable = (
        after is not None and epoch == room.epoch and 0 <= top - after <= settings.CHAT_RECOVERY_WINDOW
    )
    start = after if recoverable else max(0, top - settings.CHAT_HISTORY_LIMIT)
    history = [serialize(m) for m in _messages(room, start, top)]
    return {"epoch": room.epoch, "offset": top, "recovered": recoverable, "history": history}


def messages_page(room_slug, after=0, limit=None):
    """Return up to ``limit`` (default ``CHAT_API_PAGE_LIMIT``) messages with offset > ``after``, in order.

    A client walks a long gap page by page, asking again with the last offset.
    """
    limit = settings.CHAT_API_PAGE_LIMIT if limit is None else limit
    room = Room.objects.filter(slug=room_slug).first()
    if room is None:
        return []
    return [serialize(m) for m in _messages(room, after, room.last_offset)[:limit]]


def reset_history(room_slug):
    """Delete a room's messages and give it a new epoch; return the new epoch (str).

    Clients that resume with the old epoch get ``recovered: False`` and reload.
    """
    with transaction.atomic():
        room = Room.objects.select_for_update().get(slug=room_slug)
        Message.objects.filter(room=room).delete()
        room.epoch, room.last_offset = new_epoch(), 0
        room.save(update_fields=["epoch", "last_offset"])
    return room.epoch


async def broadcast(message):
    """Send one message (wire dict) to every socket of its room, on every worker.

    The event carries the message (the consumer checks its offset) and its
    ``message`` frame already encoded (``text``, str): encoded once here, not
    once per socket, and ``stored`` (Unix time in seconds, after the commit)
    for the delivery-latency metric. Raises whatever the channel layer raises when Redis
    cannot be reached (``redis.RedisError`` or ``OSError``).
    """
    layer = get_channel_layer()
    event = {"type": EVENT_TYPE, "message": message, "text": encode(message_frame(message)), "stored": time.time()}
    await layer.group_send(group_name(message["room"]), event)


def broadcast_sync(message):
    """Synchronous :func:`broadcast`, for WSGI views (gunicorn)."""
    async_to_sync(broadcast)(message)
