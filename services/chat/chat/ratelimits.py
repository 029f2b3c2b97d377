"""Rate limits of chat messages, with the ``limits`` library (moving windows).

Two limits apply to every message a socket sends: one per connection, kept in
the worker's memory, and one per user across every worker and host, kept in
Redis (so a user cannot multiply their allowance by opening sockets on several
workers). Limits are strings in ``limits``' notation, e.g. ``"10/second"``,
``"60/minute"``, from the settings ``CHAT_RATE_LIMIT_PER_CONNECTION`` and
``CHAT_RATE_LIMIT_PER_USER``. A connection refused more than
``CHAT_RATE_LIMIT_TOLERANCE`` times within a minute is closed (1008).

A closed connection's windows are not cleared: limits' memory storage drops
them once they expire (at most a minute). Clearing them at disconnect raced
the storage's own expiry task in limits 5.8 (a ``KeyError`` in a task nobody
awaits, logged with a traceback; found by tests/stack/test_fuzz_shapes.py).
"""

import asyncio
import logging
import weakref

from django.conf import settings
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from switchyard import redis_connections

logger = logging.getLogger(__name__)

_limiters = weakref.WeakKeyDictionary()  # event loop -> RateLimits


class RateLimits:
    """The per-connection and per-user limiters of one event loop."""

    def __init__(self, redis_url, per_connection, per_user, tolerance):
        self.per_connection = parse(per_connection)
        self.per_user = parse(per_user)
        self.tolerance = parse(f"{tolerance}/minute")
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.shared = MovingWindowRateLimiter(redis_connections.limits_storage(redis_url))

    async def allow(self, username, channel_name):
        """Count one message; return True when both limits allow it, False when either is exceeded.

        While Redis is unreachable only the per-connection limit applies (the
        per-user one fails open): the message is then stored and recovered by
        every client, instead of being dropped with the socket.
        """
        if not await self.local.hit(self.per_connection, "connection", channel_name):
            return False
        try:
            return await self.shared.hit(self.per_user, "user", username)
        except (RedisError, OSError) as exc:
            logger.warning("per-user rate limit skipped, Redis unreachable: %s", exc)
            return True

    async def tolerate(self, channel_name):
        """Count one refused message; return False once a connection has had more than the tolerance in a minute."""
        return await self.local.hit(self.tolerance, "refused", channel_name)


def rate_limits():
    """Return this event loop's :class:`RateLimits`, made on first use from settings."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = RateLimits(
            settings.REDIS_URL,
            settings.CHAT_RATE_LIMIT_PER_CONNECTION,
            settings.CHAT_RATE_LIMIT_PER_USER,
            settings.CHAT_RATE_LIMIT_TOLERANCE,
        )
        _limiters[loop] = limiter
    return limiter
