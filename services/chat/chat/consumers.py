"""The chat consumer: one instance per WebSocket on ``/ws/chat/<room>/``.

Thin by design: parsing lives in ``chat.protocol``, storage and delivery in
``chat.messages``, presence and the socket cap in ``chat.presence``, who may
enter in ``chat.access``, rate limits in ``chat.ratelimits``. The frames and
close codes are written down in ``docs/protocol.md``.
"""

import functools
import logging
import time
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from chat import messages, metrics, presence, protocol
from chat.access import can_access
from chat.commits import group_commit
from chat.ratelimits import rate_limits
from chat.signals import session_group
from switchyard import frames
from switchyard.websocket import log_connection
from switchyard.worker import worker_id

logger = logging.getLogger(__name__)

# What the channel layer or presence raise when Redis cannot be reached
# (redis-py wraps socket errors in its own ConnectionError/TimeoutError). Not
# OSError: the ASGI servers raise an OSError subclass for a socket the client
# closed (uvicorn's ClientDisconnected; switchyard.daphne_server's for daphne).
REDIS_ERRORS = (RedisError, OSError)


class ChatConsumer(AsyncWebsocketConsumer):
    """Joins the room's group, sends the welcome frame, relays messages and presence.

    Handshake: refused (HTTP 403) without a signed-in session; the Origin
    check happens before, in ``switchyard.websocket.OriginAllowlist``. A
    non-member of a private room is closed with 4403, a user over the socket
    cap with 1008.

    Ordering, no loss, no duplicates: the consumer joins the room's group
    *before* it reads the welcome from the database, and remembers the room's
    last offset ``self.offset`` that the welcome ended at. A group event at or
    below it is a duplicate and dropped; the next one is sent; one beyond a
    gap (the channel layer dropped or reordered events) first gets the missing
    offsets from the database. Each socket thus receives the room's messages
    in offset order, each once.

    If Redis goes away under the consumer on the fan-out layer, the socket
    stays open: messages it sends are stored, and once the worker has Redis
    again (``channel_layer.reconnected``) it gets what it missed from the
    database. Past the layer's grace, or on a layer without that signal, the
    socket is closed with 1013 (Try Again Later): the client reconnects and
    recovers from its offset.
    """

    groups_joined = ()
    joined = False
    claimed = False
    watching = False  # the layer sends channel_layer.reconnected after losing Redis (use_layer_extensions)
    write_frame = None  # the server's pre-encoded frame writer (switchyard.frames), once the welcome went out

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except OSError:
            # The server raises ClientDisconnected (an OSError; uvicorn's own,
            # switchyard.daphne_server's for daphne) when the consumer sends
            # to a socket the client already dropped: nothing to send, only
            # cleaning up (below) is left.
            pass
        except REDIS_ERRORS as exc:
            logger.warning("closing socket in room %s with 1013: channel layer lost (%s)", getattr(self, "room", "?"), exc)
            log_connection("close", scope, room=getattr(self, "room", None), code=protocol.CLOSE_TRY_AGAIN_LATER,
                           reason="redis_lost")
            try:
                if not getattr(self, "accepted", False):
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": protocol.CLOSE_TRY_AGAIN_LATER})
            except (OSError, RuntimeError):
                pass  # the socket is already gone (closed by the client or a drain)
        finally:
            # Runs whether or not the server delivered websocket.disconnect.
            await self.leave_everything()

    async def dispatch(self, message):
        """Call the handler of one ASGI or group event, without Channels' per-event connection cleanup.

        Channels (4.2+) runs ``close_old_connections`` in a worker thread
        before every handler: one thread round trip per socket per group
        event, the largest per-delivery cost in the fan-out profile
        (docs/benchmarks-profile.md, "Profile"). Every database access of this
        consumer goes through ``database_sync_to_async``, which closes old
        connections around itself, so the extra hop guards nothing here.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']!r}")
        await handler(message)

    async def refuse(self, reason, code=None):
        """Log and end the handshake: HTTP 403 when ``code`` is None, else accept and close with ``code``."""
        log_connection("reject", self.scope, room=self.room, user=self.user.get_username() or None,
                       reason=reason, code=code)
        if code is not None:
            await self.accept()
        await self.close(code=code)

    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            await self.refuse("not_signed_in")
            return
        if not await database_sync_to_async(can_access)(self.user, self.room):
            await self.refuse("not_a_member", protocol.CLOSE_FORBIDDEN)
            return
        self.username = self.user.get_username()
        self.presence = presence.tracker(presence.announce)
        if not await self.presence.claim(self.username, self.channel_name, settings.CHAT_MAX_SOCKETS_PER_USER):
            await self.refuse("socket_cap", protocol.CLOSE_POLICY_VIOLATION)
            return
        self.claimed = True
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        epoch = query.get("epoch", [None])[0]
        after_error = None
        try:
            after = protocol.parse_after(query.get("after", [None])[0])
        except protocol.ProtocolError as exc:
            after, after_error = None, exc
        self.groups_joined = [messages.group_name(self.room)]
        if self.scope["session"].session_key:
            self.groups_joined.append(session_group(self.scope["session"].session_key))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        welcome = await database_sync_to_async(messages.welcome)(self.room, after, epoch)
        self.epoch, self.offset = welcome["epoch"], welcome["offset"]
        await self.accept()
        self.accepted = True
        log_connection("accept", self.scope, room=self.room, user=self.username, worker=worker_id())
        if after_error:
            await self.send_frame(protocol.error_frame(after_error.code, after_error.detail))
        await self.send_frame(protocol.welcome_frame(worker_id(), self.room, welcome))
        self.use_layer_extensions()
        users = await self.presence.join(self.room, self.username, self.channel_name)
        self.joined = True
        await self.send_frame(protocol.presence_frame(self.room, users))  # this socket: now
        self.presence.changed(self.room)  # the room: coalesced (chat.presence)

    def use_layer_extensions(self):
        """Ask the fan-out layer (``switchyard.fanout``) for direct delivery and for its reconnect signal.

        Only after the welcome went out: a group event that arrived while
        ``connect`` ran waits in the queue and goes first. Direct delivery
        only where the server takes pre-encoded frames without waiting
        (daphne's ``write_frame``, ``switchyard.frames``): the layer calls it
        inside its reader. Other layers lack both methods and keep the plain
        path: events through ``receive()``, a lost Redis closing the socket
        with 1013.
        """
        self.write_frame = frames.writer_of(self.scope)
        deliver_directly = getattr(self.channel_layer, "deliver_directly", None)
        if deliver_directly is not None and self.write_frame is not None:
            deliver_directly(self.channel_name, messages.EVENT_TYPE, self.chat_message_now)
        watch_reconnects = getattr(self.channel_layer, "watch_reconnects", None)
        if watch_reconnects is not None:
            watch_reconnects(self.channel_name)
            self.watching = True

    async def disconnect(self, code):
        if getattr(self, "accepted", False):
            log_connection("close", self.scope, room=self.room, user=self.username, code=code)
        await self.leave_everything()

    async def leave_everything(self):
        """Leave groups, presence and the socket count, once (idempotent; Redis errors are logged)."""
        if getattr(self, "left", False):
            return
        self.left = True
        # Each step on its own: one failing (Redis lost) must not skip the
        # others. Presence retries its removals at each heartbeat; group
        # memberships expire with channels_redis' group_expiry.
        steps = [functools.partial(self.channel_layer.group_discard, group, self.channel_name)
                 for group in self.groups_joined]
        if self.claimed:
            steps.append(functools.partial(self.presence.release, self.username, self.channel_name))
        if self.joined:
            steps.append(self._leave_presence)
        for step in steps:
            try:
                await step()
            except REDIS_ERRORS as exc:
                logger.warning("leaving room %s without Redis: %s", self.room, exc)

    async def _leave_presence(self):
        await self.presence.leave(self.room, self.username, self.channel_name)
        self.presence.changed(self.room)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            await self.send_frame(protocol.error_frame(protocol.BINARY_FRAME, "send JSON in text frames"))
            return
        try:
            kind, body = protocol.parse_client_frame(text_data)
        except protocol.ProtocolError as exc:
            await self.send_frame(protocol.error_frame(exc.code, exc.detail))
            return
        if kind == protocol.PRESENCE:
            users = await self.presence.users(self.room)
            await self.send_frame(protocol.presence_frame(self.room, users))
            return
        if not await rate_limits().allow(self.username, self.channel_name):
            await self.rate_limited()
            return
        message = await group_commit().store(self.room, self.user, body)
        await self.broadcast_stored(message)

    async def broadcast_stored(self, message):
        """Push a stored message (wire dict) to its room; on a lost Redis, keep the socket open where it can catch up.

        The message is in the database either way. On the fan-out layer a
        ``group_send`` that failed is followed by ``channel_layer.reconnected``
        to every watching socket of this worker (``switchyard.fanout``), which
        then sends it from the database (:meth:`catch_up`): the socket stays
        open and the frames its client sends meanwhile are stored, not dropped
        with it. Other workers' sockets get it the same way when they lost
        Redis too, or with the room's next message (a gap by offset). On a
        layer without that signal the error closes the socket with 1013
        (``__call__``) and the client's reconnect recovers the message.
        """
        try:
            await messages.broadcast(message)
        except REDIS_ERRORS as exc:
            if not self.watching:
                raise
            logger.warning("room %s: offset %s stored, its broadcast waits for the channel layer (%s)",
                           self.room, message["offset"], exc)

    async def rate_limited(self):
        """Refuse one message over a rate limit: an error frame, or 1008 past the tolerance."""
        if not await rate_limits().tolerate(self.channel_name):
            metrics.REFUSED_FLOOD.inc()
            log_connection("close", self.scope, room=self.room, user=self.username,
                           code=protocol.CLOSE_POLICY_VIOLATION, reason="flood")
            await self.close(code=protocol.CLOSE_POLICY_VIOLATION)
            return
        metrics.REFUSED_RATE_LIMITED.inc()
        await self.send_frame(protocol.error_frame(protocol.RATE_LIMITED, "slow down: message not sent"))

    def chat_message_now(self, event):
        """Direct delivery (``switchyard.fanout``): write the room's next message's frame at once, or return False.

        Called by the channel layer as the event arrives, outside the
        consumer's own dispatch, so it never awaits. It only takes the plain
        case: the next offset of the current epoch, no gap being filled, the
        socket open, a pre-encoded frame in the event. Anything else (a gap,
        a new epoch, a closing socket) goes back to the queue and to
        :meth:`chat_message`, in order. A duplicate is dropped here.
        """
        message = event["message"]
        if (self.catching_up or getattr(self, "closing", False) or message["epoch"] != self.epoch
                or "frame" not in event):
            return False
        if message["offset"] <= self.offset:
            return True  # already sent
        if message["offset"] != self.offset + 1:
            return False
        self.offset = message["offset"]
        self.write_frame(event["frame"], event["frame_bytes"])
        self.count_live(event)
        return True

    async def chat_message(self, event):
        """Group event handler (``type: chat.message``): forward one message, in offset order."""
        message = event["message"]
        if message["epoch"] != self.epoch:
            await self.close(code=protocol.CLOSE_HISTORY_RESET)
            return
        if message["offset"] <= self.offset:
            return  # already sent (in the welcome, or filled from the database)
        if message["offset"] > self.offset + 1:
            await self.catch_up(message["offset"] - 1)
            if message["offset"] <= self.offset:
                return
        await self.deliver_live(event)

    async def deliver_live(self, event):
        """Move the offset and send a group event's frame (encoded once by ``chat.messages.broadcast``).

        The offset moves first: a direct delivery that runs while this send
        waits on a slow socket then sees the next offset, not this one.
        """
        self.offset = event["message"]["offset"]
        if self.write_frame is not None and "frame" in event:
            if not getattr(self, "closing", False):
                self.write_frame(event["frame"], event["frame_bytes"])
        else:
            await self.send_text(event["text"])
        self.count_live(event)

    @staticmethod
    def count_live(event):
        """Count one live delivery and its latency from the commit (``event["stored"]``)."""
        metrics.DELIVERED_LIVE.inc()
        if "stored" in event:
            metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - event["stored"]))

    catching_up = False

    async def catch_up(self, upto):
        """Send the stored messages after ``self.offset`` up to offset ``upto``, in order.

        Direct delivery waits meanwhile (:attr:`catching_up`), so nothing is
        sent twice or out of order.
        """
        self.catching_up = True
        try:
            missed = await database_sync_to_async(messages.messages_between)(self.room, self.offset, upto)
            for earlier in missed:
                if earlier["epoch"] != self.epoch:
                    await self.close(code=protocol.CLOSE_HISTORY_RESET)
                    return
                if earlier["offset"] == self.offset + 1:
                    await self.send_frame(protocol.message_frame(earlier))
                    self.offset = earlier["offset"]
                    metrics.DELIVERED_GAP.inc()
        finally:
            self.catching_up = False

    async def channel_layer_reconnected(self, event):
        """Layer event (``type: channel_layer.reconnected``, ``switchyard.fanout``): this worker lost Redis and is back.

        Group events published meanwhile never reached this worker; the
        database has them. Send what the socket missed, by offset, and keep
        the socket open. More than ``CHAT_RECOVERY_WINDOW`` missed: close with
        1013, and the client's reconnect gets the welcome's history instead.
        """
        logger.info("room %s: channel layer back after %.1f s; filling the gap from offset %s",
                    self.room, event.get("seconds") or 0.0, self.offset)
        room = await database_sync_to_async(messages.room_state)(self.room)
        if room["epoch"] != self.epoch:
            await self.close(code=protocol.CLOSE_HISTORY_RESET)
            return
        if room["offset"] - self.offset > settings.CHAT_RECOVERY_WINDOW:
            log_connection("close", self.scope, room=self.room, user=self.username,
                           code=protocol.CLOSE_TRY_AGAIN_LATER, reason="gap_too_large")
            await self.close(code=protocol.CLOSE_TRY_AGAIN_LATER)
            return
        await self.catch_up(room["offset"])

    async def chat_presence(self, event):
        """Group event handler (``type: chat.presence``): forward the room's users."""
        await self.send_frame(protocol.presence_frame(event["room"], event["users"]))

    async def session_ended(self, event):
        """Group event handler (``type: session.ended``): the session signed out; close with 4401."""
        log_connection("close", self.scope, room=self.room, user=self.username, code=protocol.CLOSE_SIGNED_OUT,
                       reason="signed_out")
        await self.close(code=protocol.CLOSE_SIGNED_OUT)

    async def close(self, code=None, reason=None):
        """Close the socket; group events that arrive until the disconnect are then dropped."""
        self.closing = True
        await super().close(code=code, reason=reason)

    async def send_frame(self, frame):
        """Send one frame (dict) as a JSON text frame (nothing once the consumer closed the socket)."""
        await self.send_text(protocol.encode(frame))

    async def send_text(self, text):
        """Send one encoded frame (str) as a text frame (nothing once the consumer closed the socket)."""
        if getattr(self, "closing", False):
            return
        await self.send(text_data=text)
