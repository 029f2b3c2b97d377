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

import collections
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from redis.exceptions import RedisError

from switchyard.frames import text_frame

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

    ``user`` is a signed-in Django user. Raises
    ``chat.protocol.ProtocolError`` for an invalid body (nothing is stored).
    One transaction of its own; :func:`store_messages` stores several in one.
    """
    return store_messages([(room_slug, user, validate_body(body))])[0]


def store_messages(batch):
    """Store ``batch`` (list of ``(room_slug, user, body)``, bodies already validated) in one transaction.

    Returns the wire forms (list of dicts), in ``batch``'s order. Each room's
    ``last_offset`` is moved by the number of its messages in the batch with
    one ``UPDATE … RETURNING``, which locks its row until the commit
    (PostgreSQL; SQLite's IMMEDIATE transactions lock the database), and its
    messages are inserted with the offsets in between, in ``batch``'s order:
    offsets stay gapless, per room, in order, and nothing is visible (or
    acknowledged by the caller) before the one commit. One statement per
    room in the batch, one multi-row insert and one commit, whatever the
    batch's size: the group commit of ``chat.commits``. A room is created
    here only for a room's first message posted before anyone joined.
    """
    counts = collections.Counter(slug for slug, _, _ in batch)
    with transaction.atomic():
        # Rooms in one order (sorted) in every transaction: two workers whose batches hold the same rooms
        # lock them in the same order, so they wait for each other instead of deadlocking (PostgreSQL).
        rooms = {slug: _advance(slug, counts[slug]) for slug in sorted(counts)}
        next_offset = {slug: room.last_offset - counts[slug] for slug, room in rooms.items()}
        rows = []
        for slug, user, body in batch:
            next_offset[slug] += 1
            rows.append(Message(room=rooms[slug], user=user, body=body, offset=next_offset[slug]))
        created = Message.objects.bulk_create(rows)
    metrics.MESSAGES_STORED.inc(len(created))
    return [serialize(message) for message in created]


def _advance(slug, count):
    """Add ``count`` to the room's ``last_offset`` and return the room (its id, slug, epoch, new last offset).

    One ``UPDATE … RETURNING`` (SQLite 3.35+, PostgreSQL), inside the
    caller's transaction; the room is created first if it does not exist.
    """
    table, quote = Room._meta.db_table, connection.ops.quote_name
    sql = (f"UPDATE {quote(table)} SET {quote('last_offset')} = {quote('last_offset')} + %s "
           f"WHERE {quote('slug')} = %s RETURNING {quote('id')}, {quote('epoch')}, {quote('last_offset')}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [count, slug])
        row = cursor.fetchone()
        if row is None:
            get_or_create_room(slug)
            cursor.execute(sql, [count, slug])
            row = cursor.fetchone()
    return Room.from_db(connection.alias, ["id", "slug", "epoch", "last_offset"], [row[0], slug, row[1], row[2]])


def _messages(room, after, upto):
    queryset = Message.objects.filter(room=room, offset__gt=after, offset__lte=upto)
    return queryset.select_related("room", "user").order_by("offset")


def messages_between(room_slug, after, upto):
    """Return the room's messages with ``after < offset <= upto`` (wire dicts, offset order)."""
    room = Room.objects.filter(slug=room_slug).first()
    return [] if room is None else [serialize(m) for m in _messages(room, after, upto)]


def room_state(room_slug):
    """Return ``{"epoch": str, "offset": int}``: the room's epoch and last offset (offset 0 for a room not yet made)."""
    room = Room.objects.filter(slug=room_slug).only("epoch", "last_offset").first()
    return {"epoch": room.epoch if room else None, "offset": room.last_offset if room else 0}


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

    The event carries the message (the consumer checks its offset), its
    ``message`` frame already encoded, once here and not once per socket:
    ``text`` (the JSON, str) and ``frame``/``frame_bytes`` (the WebSocket
    frame, bytes, and its payload length: ``switchyard.frames.text_frame``,
    for servers that take pre-encoded frames), and ``stored`` (Unix time in
    seconds, after the commit) for the delivery-latency metric. Raises whatever the channel layer raises when Redis
    cannot be reached (``redis.RedisError`` or ``OSError``), counted in
    ``switchyard_chat_broadcasts_delayed_total`` (the message is stored; sockets get it from the database).
    """
    layer = get_channel_layer()
    text = encode(message_frame(message))
    frame, frame_bytes = text_frame(text)
    event = {"type": EVENT_TYPE, "message": message, "text": text, "frame": frame, "frame_bytes": frame_bytes,
             "stored": time.time()}
    try:
        await layer.group_send(group_name(message["room"]), event)
    except (RedisError, OSError):
        metrics.BROADCASTS_DELAYED.inc()
        raise


def broadcast_sync(message):
    """Synchronous :func:`broadcast`, for WSGI views (gunicorn)."""
    async_to_sync(broadcast)(message)
