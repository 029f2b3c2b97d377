"""Rooms and their messages.

Each room numbers its messages with an ``offset`` (1, 2, 3, … with no gaps)
and carries an ``epoch`` that changes only when its history is reset; a
client that knows both can resume exactly where it left off (recovery, after
Centrifugo's offset + epoch model).
"""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

# Room slugs: ASCII letters, digits, ``-`` and ``_``, 1-64 characters, so that
# ``chat.<slug>`` is a valid Channels group name (ASCII, under 100 characters).
ROOM_SLUG_PATTERN = r"[-a-zA-Z0-9_]{1,64}"


def new_epoch():
    """Return a fresh epoch: 8 random hex characters (str)."""
    return secrets.token_hex(4)


class Room(models.Model):
    """A chat room, named by its slug and created on first use.

    ``last_offset`` is the offset of the room's newest message (0: none yet);
    it is incremented under a row lock in the transaction that stores the
    message, so offsets are gapless and commit in order.
    """

    slug = models.CharField(max_length=64, unique=True)
    # A private room admits its members only (sockets, history, posting);
    # rooms created on first use are public.
    is_private = models.BooleanField(default=False)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="chat_rooms")
    epoch = models.CharField(max_length=16, default=new_epoch)
    last_offset = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.slug


class Message(models.Model):
    """One chat message. ``id`` only grows (a sequence); ``offset`` numbers it within its room."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    offset = models.BigIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    body = models.TextField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="chat_message_room_id")]
        constraints = [models.UniqueConstraint(fields=["room", "offset"], name="chat_message_room_offset")]

    def __str__(self):
        return f"{self.room_id}#{self.pk}"
