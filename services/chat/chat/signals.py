"""Signing out ends the session's sockets, on every worker."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Channels routes a group event of this type to ``ChatConsumer.session_ended``.
SESSION_ENDED = "session.ended"


def session_group(session_key):
    """Return the Channels group (str) that every socket opened with a session joins."""
    return f"session.{session_key}"


@receiver(user_logged_out)
def close_sockets_of_the_session(sender, request, user, **kwargs):
    """On sign-out, tell every consumer of this session (any worker) to close with 4401."""
    session_key = getattr(request.session, "session_key", None)
    if not session_key:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(session_group(session_key), {"type": SESSION_ENDED})
    except RedisError as exc:
        # The sockets stay open until they reconnect; their session is gone
        # by then, so the reconnect is refused.
        logger.warning("sign-out could not reach the channel layer: %s", exc)
