"""Rooms and their messages."""

from django.conf import settings
from django.db import models
from django.utils import timezone

# Room slugs: ASCII letters, digits, ``-`` and ``_``, 1-64 characters, so that
# ``chat.<slug>`` is a valid Channels group name (ASCII, under 100 characters).
ROOM_SLUG_PATTERN = r"[-a-zA-Z0-9_]{1,64}"


class Room(models.Model):
    """A chat room, named by its slug and created on first use."""

    slug = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.slug


class Message(models.Model):
    """One chat message. ``id`` only grows (a database sequence / AUTOINCREMENT)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    body = models.TextField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="chat_message_room_id")]

    def __str__(self):
        return f"{self.room_id}#{self.pk}"
