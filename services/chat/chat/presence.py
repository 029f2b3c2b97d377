"""Presence: who is in which room, across every ASGI worker and host, kept in Redis.

Each open socket is one member of the room's sorted set
``<prefix>:presence:<room>``: the member is ``"<username>|<channel name>"``
and its score the time (Unix seconds) at which it expires. A room's users are
the distinct usernames of its unexpired members, so a user with two tabs
counts once.

A socket joins on connect and leaves on disconnect. Every worker refreshes
its own members' expiry every ``PRESENCE_HEARTBEAT`` seconds (one pipelined
round trip for all its sockets), so the members of a worker that was killed
(no disconnect ran) expire ``PRESENCE_TTL`` seconds after its last
heartbeat. Expired members are removed by whichever worker's heartbeat (or
join/leave) finds them first; ``ZREMRANGEBYSCORE`` reports how many it
removed, so exactly one worker announces the change. A dead worker's users
are therefore gone from every presence list within
``PRESENCE_TTL + PRESENCE_HEARTBEAT`` seconds, the documented bound.

Announcements are coalesced per room and worker (:meth:`Presence.changed`):
the first join or leave in a quiet room is announced at once, the joins and
leaves of the next ``PRESENCE_ANNOUNCE_INTERVAL`` seconds together in one
more announcement at its end. A room filling up with N sockets thus costs
about N frames per interval, not N² (every join announced to every socket).
A joining socket gets the room's users straight away from the consumer.

The same heartbeat keeps a second set per user, ``<prefix>:sockets:<user>``,
of that user's open sockets on every worker: :meth:`Presence.claim` refuses
one more socket than ``CHAT_MAX_SOCKETS_PER_USER``.
"""

import asyncio
import logging
import time
import weakref

from django.conf import settings
from redis.exceptions import RedisError

from switchyard import redis_connections

logger = logging.getLogger(__name__)

_trackers = weakref.WeakKeyDictionary()  # event loop -> Presence


def member(username, channel_name):
    """Return the sorted-set member (str) of one socket."""
    return f"{username}|{channel_name}"


class Presence:
    """Presence of this process's sockets, for one event loop.

    ``on_change`` is an async callable ``(room, users)`` that announces a
    change found by the heartbeat (``users``: sorted list of usernames).
    Every coroutine may raise ``redis.RedisError`` / ``OSError`` when Redis is
    unreachable.
    """

    def __init__(self, redis_url, ttl, heartbeat, prefix, on_change, announce_interval=1.0):
        self.redis = redis_connections.async_client(redis_url)
        self.ttl = ttl
        self.heartbeat = heartbeat
        self.prefix = prefix
        self.on_change = on_change
        self.announce_interval = announce_interval  # seconds
        self.local = {}  # room -> set of members held by this process
        self.sockets = {}  # channel name -> username, for the per-user socket sets
        # Removals that failed because Redis was unreachable (a socket closed
        # during an outage or a failover): retried by every heartbeat until
        # done, so the per-user cap and the room lists do not count closed
        # sockets for a whole TTL after Redis is back (a replica promoted by
        # Sentinel still holds them).
        self.unreleased = {}  # channel name -> username
        self.unlisted = {}  # room -> set of members
        self._task = None
        self._announcing = {}  # room -> True when it changed again since its last announcement
        self._announcers = set()  # their tasks (the loop keeps weak references only)

    def key(self, room):
        """Return the Redis key (str) of a room's sorted set."""
        return f"{self.prefix}:presence:{room}"

    def user_key(self, username):
        """Return the Redis key (str) of a user's open sockets."""
        return f"{self.prefix}:sockets:{username}"

    async def claim(self, username, channel_name, cap):
        """Register one open socket of ``username``; return False (and register nothing) past ``cap`` sockets.

        Counts the user's unexpired sockets on every worker.
        """
        now = time.time()
        key = self.user_key(username)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {channel_name: now + self.ttl})
            pipe.expire(key, self.ttl * 2)
            pipe.zcard(key)
            count = (await pipe.execute())[-1]
        if count > cap:
            await self.redis.zrem(key, channel_name)
            return False
        self.sockets[channel_name] = username
        self._ensure_heartbeat()
        return True

    async def release(self, username, channel_name):
        """Unregister one socket of ``username``; when Redis cannot be reached, raise and retry at each heartbeat."""
        self.sockets.pop(channel_name, None)
        try:
            await self.redis.zrem(self.user_key(username), channel_name)
        except (RedisError, OSError):
            self.unreleased[channel_name] = username
            self._ensure_heartbeat()
            raise

    async def join(self, room, username, channel_name):
        """Add one socket to a room; return the room's users (sorted list of str)."""
        name = member(username, channel_name)
        self.local.setdefault(room, set()).add(name)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key(room), {name: time.time() + self.ttl})
            pipe.expire(self.key(room), self.ttl * 2)
            await pipe.execute()
        self._ensure_heartbeat()
        return await self.users(room)

    async def leave(self, room, username, channel_name):
        """Remove one socket from a room; return the room's users (sorted list of str)."""
        name = member(username, channel_name)
        members = self.local.get(room, set())
        members.discard(name)
        if not members:
            self.local.pop(room, None)
        try:
            await self.redis.zrem(self.key(room), name)
        except (RedisError, OSError):
            self.unlisted.setdefault(room, set()).add(name)
            self._ensure_heartbeat()
            raise
        return await self.users(room)

    async def users(self, room):
        """Drop expired members of a room and return its users (sorted list of distinct usernames)."""
        now = time.time()
        await self.redis.zremrangebyscore(self.key(room), "-inf", now)
        members = await self.redis.zrangebyscore(self.key(room), now, "+inf")
        return sorted({m.decode().split("|", 1)[0] for m in members})

    async def refresh(self):
        """One heartbeat: extend this process's members, purge expired ones everywhere it has rooms.

        Returns ``{room: users}`` for the rooms where this call removed expired
        members (their users changed and must be announced).
        """
        rooms = [(room, sorted(members)) for room, members in self.local.items() if members]
        now = time.time()
        sockets = list(self.sockets.items())
        retried = await self._retry_removals()
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel_name, username in sockets:
                pipe.zadd(self.user_key(username), {channel_name: now + self.ttl})
                pipe.expire(self.user_key(username), self.ttl * 2)
            for room, members in rooms:
                pipe.zadd(self.key(room), {name: now + self.ttl for name in members})
                pipe.expire(self.key(room), self.ttl * 2)
                pipe.zremrangebyscore(self.key(room), "-inf", now)
            results = (await pipe.execute())[2 * len(sockets):]
        changed = {}
        for index, (room, _) in enumerate(rooms):
            if results[index * 3 + 2]:
                changed[room] = await self.users(room)
        for room in retried:  # sockets that left during the outage are gone from these lists now
            if room not in changed:
                changed[room] = await self.users(room)
        return changed

    async def _retry_removals(self):
        """Retry the removals that failed without Redis; return the rooms (set) whose lists changed.

        A failure is logged and left for the next heartbeat, so that it never
        stops the refresh of the live members.
        """
        unreleased, unlisted = dict(self.unreleased), {room: set(names) for room, names in self.unlisted.items()}
        if not unreleased and not unlisted:
            return set()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for channel_name, username in unreleased.items():
                    pipe.zrem(self.user_key(username), channel_name)
                for room, names in unlisted.items():
                    pipe.zrem(self.key(room), *names)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("presence removals still pending (%d sockets): %s", len(unreleased) + len(unlisted), exc)
            return set()
        for channel_name in unreleased:
            self.unreleased.pop(channel_name, None)
        for room, names in unlisted.items():
            self.unlisted[room] -= names
            if not self.unlisted[room]:
                del self.unlisted[room]
        return set(unlisted)

    def changed(self, room):
        """Announce the room's users soon: now if the room was quiet, else once at the end of the interval.

        Returns at once; the announcement runs in its own task, and a Redis
        error there is logged (the entries are right in Redis; the next
        announcement or a client's ``presence`` request shows them).
        """
        if room in self._announcing:
            self._announcing[room] = True
            return
        self._announcing[room] = False
        task = asyncio.get_running_loop().create_task(self._announce(room))
        self._announcers.add(task)
        task.add_done_callback(self._announcers.discard)

    async def _announce(self, room):
        """Announce ``room``, then again after each interval in which it changed; then forget it."""
        try:
            while True:
                self._announcing[room] = False
                try:
                    await self.on_change(room, await self.users(room))
                except (RedisError, OSError) as exc:
                    logger.warning("presence announcement for room %s failed: %s", room, exc)
                await asyncio.sleep(self.announce_interval)
                if not self._announcing[room]:
                    return
        finally:
            self._announcing.pop(room, None)

    def _ensure_heartbeat(self):
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self):
        """Refresh every ``heartbeat`` seconds while this process holds sockets; then end."""
        while self.local or self.sockets or self.unreleased or self.unlisted:
            await asyncio.sleep(self.heartbeat)
            try:
                changed = await self.refresh()
                for room, users in changed.items():
                    await self.on_change(room, users)
            except (RedisError, OSError) as exc:
                logger.warning("presence heartbeat failed: %s", exc)

    async def close(self):
        """Stop the heartbeat and pending announcements, close the Redis connections."""
        for task in [self._task, *self._announcers]:
            if task is not None:
                task.cancel()
        await self.redis.aclose()


def tracker(on_change):
    """Return this event loop's :class:`Presence`, made on first use from settings.

    Settings: ``REDIS_URL``, ``PRESENCE_TTL``, ``PRESENCE_HEARTBEAT`` and
    ``PRESENCE_ANNOUNCE_INTERVAL`` (seconds), and the channel layer's key prefix.
    """
    loop = asyncio.get_running_loop()
    presence = _trackers.get(loop)
    if presence is None:
        prefix = redis_connections.key_prefix_setting()
        presence = Presence(settings.REDIS_URL, settings.PRESENCE_TTL, settings.PRESENCE_HEARTBEAT, prefix, on_change,
                            settings.PRESENCE_ANNOUNCE_INTERVAL)
        _trackers[loop] = presence
    return presence


# Channels routes a group event of this type to the consumer method ``chat_presence``.
EVENT_TYPE = "chat.presence"


async def announce(room, users):
    """Send a room's users (sorted list of usernames) to every socket of the room, on every worker."""
    from channels.layers import get_channel_layer

    from chat.messages import group_name

    await get_channel_layer().group_send(group_name(room), {"type": EVENT_TYPE, "room": room, "users": users})
