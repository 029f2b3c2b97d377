"""A channel layer whose group messages cost O(workers), not O(sockets): the fan-out layer.

**Why.** With channels_redis' core layer a ``group_send`` to a room of 200
sockets is 200 Redis list pushes, and every socket then pops its own copy
(``BZPOPMIN``, a Lua clean-up, two asyncio tasks per socket per message;
docs/benchmarks-profile.md). Here a ``group_send`` is one Redis ``PUBLISH``;
each ASGI worker holding members of the group reads it once, decodes it once
and hands the same message to each local member (the model of a plain
``websockets`` + Redis relay, and of channels_redis'
``RedisPubSubChannelLayer``, whose shape this follows).

**The Channels layer API, unchanged.** ``new_channel``, ``send``,
``receive``, ``group_add``, ``group_discard``, ``group_send``, ``flush``
behave as the Channels docs say (https://channels.readthedocs.io/en/stable/channel_layer_spec.html),
with these differences, each deliberate:

- Group membership lives in the worker that holds the channel: it ends with
  the process (a killed worker leaves no members behind, so ``group_expiry``
  is not needed and is ignored). ``group_add`` of a process-specific channel
  must run in the process that created it (``ValueError`` otherwise).
- ``group_add`` returns once Redis confirmed the subscription, so a message
  published after it returns reaches the channel (the chat consumer joins
  its room before it reads the welcome from the database).
- Messages are at-most-once, as on every Channels layer, and never wait in
  Redis: one published while a worker is not subscribed is not seen there.
  ``capacity`` bounds each channel's local queue (``send`` to a full local
  channel raises ``ChannelFull``; a group member whose queue is full misses
  that message, as channels_redis' ``group_send`` skips full channels; a
  member that watches reconnects gets ``channel_layer.reconnected`` in place
  of its oldest queued message instead, once, so it catches up from its own
  records rather than keep a silent gap).
- Channels without ``!`` (``runworker`` background workers, which need
  queue semantics) go to the core layer, :class:`switchyard.layers.RedisChannelLayer`,
  on the same Redis.
- Every local member of a group gets the *same* message dict, not a copy (as
  with channels_redis' pub/sub layer): handlers must not mutate it.
- ``symmetric_encryption_keys`` is refused (``ImproperlyConfigured``).

**Lost Redis, the signal consumers get.** When a worker's subscription
breaks (Redis restarted, a failover, a connection gone silent for
:data:`HEARTBEAT_TIMEOUT` seconds, a ``PUBLISH`` of this worker to the
same shard that failed) the layer reconnects with exponential
backoff (the ``backoff`` library, full jitter) and subscribes again. What a
channel gets meanwhile depends on whether its consumer asked for the signal
with :meth:`FanoutChannelLayer.watch_reconnects`:

- a watching channel keeps waiting, and once the subscription is back it
  receives ``{"type": "channel_layer.reconnected", "seconds": <down time>}``
  (handler ``channel_layer_reconnected``) *after* the subscription was
  confirmed, so whatever the consumer reads from its own records then covers
  every message it may have missed (the chat consumer fills its gap from the
  database by offset, without closing the socket). If Redis stays away past
  ``reconnect_grace`` seconds, its ``receive()`` raises as below;
- every other channel's ``receive()`` raises the error at once
  (``redis.ConnectionError``), as channels_redis' own receive does, so a
  consumer that cannot catch up ends instead of silently missing messages.

**Direct delivery.** A consumer may register, per message type, a plain
(synchronous) function the layer calls itself as the message arrives
(:meth:`FanoutChannelLayer.deliver_directly`), instead of queueing it for
the consumer's ``receive()``: no task switch, no Channels dispatch per
socket. It runs in the layer's reader, only when the channel has nothing
queued, and returns ``False`` to have the message queued after all (the
chat consumer does when the offset is not the next one). Synchronous on
purpose: code that awaits inside the reader would hold every other socket
of the worker back while one slow client drains, and ``asyncio.timeout()``
would bind to the reader's task instead of the consumer's (the chat
consumer registers one only where the server can write a pre-encoded frame
without waiting: daphne, ``switchyard.frames``).

Metrics: ``switchyard_channel_layer_messages_total`` and ``_errors_total`` by
operation, ``switchyard_channel_layer_reconnects_total`` (``switchyard.metrics``).
"""

import asyncio
import collections
import inspect
import logging
import math
import time
import types
import uuid

import backoff
import msgpack
import redis.asyncio
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from channels_redis.utils import _consistent_hash, create_pool, decode_hosts
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchyard import metrics
from switchyard.layers import RedisChannelLayer, _counted
from switchyard.redis_connections import PUBLISH_TIMEOUT

logger = logging.getLogger(__name__)

# The message a watching channel receives when its worker subscribed again after losing Redis.
RECONNECTED = "channel_layer.reconnected"
# Seconds between PINGs on an idle subscription, and without any reply (a
# message or a PONG) before the connection counts as lost: a Redis host that
# vanished without a reset would otherwise leave the worker subscribed to
# nothing for the kernel's TCP timeout (minutes).
HEARTBEAT_INTERVAL = 2.0
HEARTBEAT_TIMEOUT = 6.0
# Seconds a SUBSCRIBE may wait for Redis' confirmation in group_add.
SUBSCRIBE_TIMEOUT = 5.0
# Backoff between reconnect attempts (seconds): exponential from 0.05, capped, full jitter.
RECONNECT_BACKOFF_CAP = 1.0


def lost_redis(error):
    """The ``redis.ConnectionError`` every caller sees once its worker lost Redis (``error``: the cause)."""
    return RedisConnectionError(f"channel layer lost Redis: {error}")


class _Failure:
    """Queued for a channel whose receive() must raise ``error`` (its worker lost Redis)."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


_background = set()


def _keep(task):
    """Hold a reference to a background ``task`` until it ends (asyncio keeps only weak ones); retrieve its outcome."""
    _background.add(task)

    def done(task):
        _background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("channel layer: background task failed: %s", task.exception())

    task.add_done_callback(done)
    return task


class _Subscription:
    """One worker's subscription to one Redis shard: a connection of its own in subscribed mode.

    ``names`` (set of bytes) are the Redis channels it should hold; ``run()``
    connects, subscribes to all of them, reads until the connection fails,
    and starts over with backoff. ``on_message(name, data)`` gets every
    published message (bytes, bytes); ``on_up(seconds_down)`` and
    ``on_down(error)`` the state changes.
    """

    def __init__(self, host, on_message, on_up, on_down):
        self.host, self.on_message, self.on_up, self.on_down = host, on_message, on_up, on_down
        self.names = set()
        self.confirmed = set()
        self.waiters = collections.defaultdict(list)  # name -> futures waiting for its confirmation
        self.connection = None
        self.up = asyncio.Event()
        self.last_reply = time.monotonic()
        self.task = None
        self.pool = None

    def start(self):
        """Start the reading task in the running event loop (once)."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run(), name="fan-out layer subscription")

    async def subscribe(self, name):
        """Subscribe to ``name`` (bytes) and return once Redis confirmed it.

        Raises ``redis.ConnectionError`` when the subscription is down (Redis
        lost) and ``redis.TimeoutError`` (a ``RedisError``, not the built-in
        ``TimeoutError``, which is an ``OSError``: consumers read that as a
        client that left) when Redis did not confirm within
        :data:`SUBSCRIBE_TIMEOUT` seconds.
        """
        self.names.add(name)
        if name in self.confirmed:
            return
        if not self.up.is_set():
            raise RedisConnectionError("the channel layer's subscription to Redis is down")
        waiter = asyncio.get_running_loop().create_future()
        first = not self.waiters[name]
        self.waiters[name].append(waiter)
        if first:
            await self.connection.send_command("SUBSCRIBE", name)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), SUBSCRIBE_TIMEOUT)
        except asyncio.TimeoutError:
            waiters = self.waiters.get(name)
            if waiters and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self.waiters[name]
            raise RedisTimeoutError(f"Redis did not confirm SUBSCRIBE within {SUBSCRIBE_TIMEOUT} s") from None

    async def unsubscribe(self, name):
        """Stop reading ``name`` (bytes); does not wait for the confirmation."""
        self.names.discard(name)
        self.confirmed.discard(name)
        if self.up.is_set() and not self.waiters.get(name):
            try:
                await self.connection.send_command("UNSUBSCRIBE", name)
            except (RedisError, OSError) as exc:
                logger.debug("UNSUBSCRIBE failed (the reader reconnects): %s", exc)

    def restart(self, error):
        """Drop the connection (if up) so ``run()`` reports it lost and subscribes again.

        For a failure seen elsewhere on the same shard (``error``: a failed
        ``PUBLISH``): the subscription may have lost messages too, and its
        own heartbeat would notice only after :data:`HEARTBEAT_TIMEOUT`
        seconds, if at all. Returns at once; the pending read then fails.
        """
        if self.up.is_set() and self.connection is not None:
            logger.warning("channel layer: a publish failed (%s); subscribing again", error)
            _keep(asyncio.ensure_future(self.connection.disconnect(nowait=True)))

    async def run(self):
        """Read forever: connect, subscribe, read; on a failure report it, back off, start over."""
        down_since = None
        while True:
            try:
                await self._connect()  # Redis errors: retried with backoff until it works
                if down_since is not None:
                    metrics.CHANNEL_LAYER_RECONNECTS.inc()
                self.on_up(None if down_since is None else time.monotonic() - down_since)
                await self._read()
            except Exception as exc:  # noqa: BLE001 - never end: RedisError, OSError, redis-py's state, a bug
                if down_since is None or self.up.is_set():
                    down_since = time.monotonic()
                self._lost(exc)
                if not isinstance(exc, (RedisError, OSError)):
                    await asyncio.sleep(RECONNECT_BACKOFF_CAP)  # not Redis' fault: do not spin

    def _lost(self, error):
        self.up.clear()
        self.confirmed.clear()
        for waiters in self.waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(lost_redis(error))
        self.waiters.clear()
        if self.connection is not None:
            _keep(asyncio.ensure_future(self._discard(self.connection)))
            self.connection = None
        logger.warning("channel layer: subscription lost (%s); reconnecting", error)
        metrics.LAYER_FAILED["reader"].inc()
        self.on_down(error)

    async def _discard(self, connection):
        try:
            await connection.disconnect(nowait=True)
            await self.pool.release(connection)
        except Exception:  # noqa: BLE001 - a dead connection's cleanup
            pass

    @backoff.on_exception(backoff.expo, (RedisError, OSError), factor=0.05, max_value=RECONNECT_BACKOFF_CAP,
                          jitter=backoff.full_jitter, logger=None)
    async def _connect(self):
        """Open the connection and subscribe to every name, retried with backoff until it works."""
        if self.pool is None:
            self.pool = create_pool(self.host)
        connection = await self.pool.get_connection()
        try:
            names = sorted(self.names)
            if names:
                await connection.send_command("SUBSCRIBE", *names)
                pending = set(names)
                while pending:
                    reply = await connection.read_response(timeout=SUBSCRIBE_TIMEOUT, push_request=True)
                    if reply is None:
                        raise RedisConnectionError("Redis did not confirm SUBSCRIBE")
                    if reply[0] == b"subscribe":
                        pending.discard(reply[1])
                    elif reply[0] == b"message":  # published after its SUBSCRIBE was confirmed
                        self.on_message(reply[1], reply[2])
                self.confirmed = set(names)
        except BaseException:
            await self._discard(connection)
            raise
        self.connection = connection
        self.last_reply = time.monotonic()
        self.up.set()

    async def _read(self):
        """Dispatch replies until the connection fails (raises the ``RedisError``)."""
        connection = self.connection
        heartbeat = _keep(asyncio.ensure_future(self._heartbeat(connection)))
        try:
            while True:
                reply = await connection.read_response(timeout=math.inf, push_request=True)
                self.last_reply = time.monotonic()
                kind = reply[0]
                if kind == b"message":
                    self.on_message(reply[1], reply[2])
                elif kind == b"subscribe":
                    name = reply[1]
                    if name in self.names:
                        self.confirmed.add(name)
                    for waiter in self.waiters.pop(name, ()):
                        if not waiter.done():
                            waiter.set_result(None)
                # "unsubscribe" and "pong": nothing to do (last_reply already moved)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, connection):
        """PING every :data:`HEARTBEAT_INTERVAL` s; past :data:`HEARTBEAT_TIMEOUT` s of silence, drop the connection."""
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            if time.monotonic() - self.last_reply > HEARTBEAT_TIMEOUT:
                logger.warning("channel layer: no reply from Redis in %s s; dropping the subscription",
                               HEARTBEAT_TIMEOUT)
                await connection.disconnect(nowait=True)  # the pending read fails: _read raises
                return
            try:
                await connection.send_command("PING")
            except (RedisError, OSError):
                return  # the read fails too


class FanoutChannelLayer(BaseChannelLayer):
    """Redis pub/sub channel layer with local fan-out, a reconnect signal and direct delivery (module docstring).

    Arguments: ``hosts`` (channels_redis' form: a list of ``{"address": URL,
    ...}`` or Sentinel dicts, one per shard; groups and processes spread over
    them by channels_redis' consistent hash), ``prefix`` (str, Redis channel
    names start with it), ``capacity`` (messages queued per local channel),
    ``expiry`` (seconds; the core layer's, for channels without ``!``),
    ``reconnect_grace`` (seconds a watching channel waits for Redis to come
    back before its receive() raises), ``channel_capacity`` (as Channels).
    ``group_expiry`` is accepted and ignored (membership ends with the process).
    """

    extensions = ["groups", "flush"]

    def __init__(self, hosts=None, prefix="asgi", expiry=60, group_expiry=86400, capacity=100,
                 channel_capacity=None, reconnect_grace=30.0, symmetric_encryption_keys=None, **core_options):
        if symmetric_encryption_keys:
            raise ImproperlyConfigured("switchyard.fanout.FanoutChannelLayer does not encrypt messages; "
                                       "use switchyard.layers.RedisChannelLayer for symmetric_encryption_keys")
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.hosts = decode_hosts(hosts)
        self.prefix = prefix
        self.reconnect_grace = reconnect_grace
        self.core_options = {"hosts": hosts, "prefix": prefix, "expiry": expiry, "group_expiry": group_expiry,
                             "capacity": capacity, "channel_capacity": channel_capacity, **core_options}
        self.client_token = uuid.uuid4().hex
        self._reset()

    def _reset(self):
        self.queues = {}  # local channel -> asyncio.Queue
        self.groups = collections.defaultdict(set)  # group -> local channels
        self.memberships = collections.defaultdict(set)  # local channel -> groups
        self.direct = collections.defaultdict(dict)  # local channel -> {message type: handler}
        self.watchers = set()  # channels that get RECONNECTED
        self.overflowed = set()  # watchers whose full queue got a RECONNECTED in place of what it dropped
        self.subscriptions = None  # shard index -> _Subscription, in the receiving loop
        self.loop = None
        self.down = {}  # shard index -> (error, monotonic time it went down)
        self.grace_timer = None
        self.publishers = {}  # event loop -> [redis.asyncio.Redis per shard]
        self._core = None

    # --- names ------------------------------------------------------------------

    def _shard(self, name):
        """The shard (index) of a group or process token (str): channels_redis' consistent hash, as the core layer."""
        return _consistent_hash(name, len(self.hosts))

    def _group_key(self, group):
        return f"{self.prefix}:group:{group}".encode()

    def _process_key(self, token):
        return f"{self.prefix}:process:{token}".encode()

    def _token_of(self, channel):
        """Return the process token of a process-specific channel (``specific.TOKEN!...``)."""
        return channel.partition("!")[0].rpartition(".")[2]

    # --- the receiving side (the worker's event loop) ----------------------------

    def _subscriptions(self):
        """Return the shard subscriptions of the running loop, starting them on first use."""
        loop = asyncio.get_running_loop()
        if self.subscriptions is None or self.loop is not loop or self.loop.is_closed():
            self.loop = loop
            self.subscriptions = [
                _Subscription(host, self._on_message, lambda seconds, i=i: self._on_up(i, seconds),
                              lambda error, i=i: self._on_down(i, error))
                for i, host in enumerate(self.hosts)
            ]
            own = self._process_key(self.client_token)
            self.subscriptions[self._shard(self.client_token)].names.add(own)
            for subscription in self.subscriptions:
                subscription.start()
        return self.subscriptions

    async def new_channel(self, prefix="specific"):
        """Return a new process-specific channel name (str) and start queueing its messages."""
        channel = f"{prefix}.{self.client_token}!{uuid.uuid4().hex}"
        self.queues[channel] = asyncio.Queue(self.get_capacity(channel))
        subscriptions = self._subscriptions()
        try:
            await self._wait_up(self._shard(self.client_token), subscriptions[self._shard(self.client_token)])
        except BaseException:
            self.queues.pop(channel, None)
            raise
        return channel

    async def _wait_up(self, shard, subscription, timeout=SUBSCRIBE_TIMEOUT):
        """Wait until ``subscription`` (of ``shard``) is up: at most ``timeout`` seconds when it is starting,
        not at all when it was lost (``redis.ConnectionError`` then)."""
        if subscription.up.is_set():
            return
        if shard in self.down:
            raise self._down_error(shard)
        try:
            await asyncio.wait_for(subscription.up.wait(), timeout)
        except asyncio.TimeoutError:
            raise RedisConnectionError("the channel layer cannot subscribe to Redis") from None

    async def receive(self, channel):
        """Return the next message (dict) of ``channel``, counted.

        Raises ``redis.ConnectionError`` once the worker lost Redis (at once
        for a channel that does not watch reconnects, after
        ``reconnect_grace`` seconds for one that does); ``CancelledError``
        when cancelled, after which the channel is forgotten (its queue, its
        groups in this process).
        """
        with _counted("receive"):
            if "!" not in channel:
                return await self._core_layer().receive(channel)
            assert self.require_valid_channel_name(channel)
            queue = self.queues.get(channel)
            if queue is None:
                queue = self.queues[channel] = asyncio.Queue(self.get_capacity(channel))
            self._subscriptions()
            if self.down and (channel not in self.watchers or self._grace_over()):
                self._forget(channel)  # its consumer ends with this error
                raise self._down_error()
            try:
                item = await queue.get()
            except asyncio.CancelledError:
                self._forget(channel)
                raise
            if isinstance(item, _Failure):
                self._forget(channel)
                raise item.error
            if item.get("type") == RECONNECTED:
                self.overflowed.discard(channel)
            return item

    def _grace_over(self):
        return any(time.monotonic() - since > self.reconnect_grace for _, since in self.down.values())

    def _down_error(self, shard=None):
        """The ``redis.ConnectionError`` for a lost shard (``shard``, or the first one down)."""
        error, _ = self.down[shard] if shard is not None else next(iter(self.down.values()))
        return lost_redis(error)

    def _forget(self, channel):
        """The channel's consumer ended: drop its queue, its direct handlers and its groups here."""
        self.queues.pop(channel, None)
        self.direct.pop(channel, None)
        self.watchers.discard(channel)
        self.overflowed.discard(channel)
        for group in self.memberships.pop(channel, ()):
            members = self.groups.get(group)
            if members is not None:
                members.discard(channel)
                if not members:
                    del self.groups[group]
                    self._unsubscribe_soon(group)

    def _unsubscribe_soon(self, group):
        """Unsubscribe from ``group`` in a task, unless a member joined it here again meanwhile."""
        if self.subscriptions is None or self.loop is None or self.loop.is_closed():
            return
        subscription = self.subscriptions[self._shard(group)]

        async def unsubscribe():
            if not self.groups.get(group):
                await subscription.unsubscribe(self._group_key(group))

        _keep(self.loop.create_task(unsubscribe()))

    def watch_reconnects(self, channel):
        """Let ``channel`` (local) wait through a Redis outage and then receive ``channel_layer.reconnected``.

        See the module docstring. Call it before the consumer's first
        ``receive()`` returns (e.g. in ``connect``); a no-op for a channel
        this process does not hold.
        """
        if channel in self.queues:
            self.watchers.add(channel)

    def deliver_directly(self, channel, message_type, handler):
        """Have the layer call ``handler(message)`` for ``channel``'s messages of ``message_type`` as they arrive.

        ``handler`` is a plain function taking the message dict (an async
        one raises ``TypeError``); it runs in the layer's reader while
        ``channel`` has nothing queued, and returns ``False`` to have the
        message queued for ``receive()`` instead. An exception it raises is
        logged, its registration dropped and the message queued (the
        consumer's own handler then meets the same problem in the consumer's
        task). See the module docstring.
        """
        if asyncio.iscoroutinefunction(handler):
            raise TypeError("deliver_directly takes a plain function: it runs inside the layer's reader")
        if channel in self.queues:
            self.direct[channel][message_type] = handler

    def _on_message(self, name, data):
        """Hand one published message (Redis channel ``name``, msgpack ``data``) to its local channels.

        Never raises: a message that cannot be decoded (another publisher on
        the prefix, a bug) is logged, counted (``receive`` errors) and
        dropped, so it cannot end the subscription of every worker that reads it.
        """
        try:
            group_prefix = f"{self.prefix}:group:".encode()
            if name.startswith(group_prefix):
                members = self.groups.get(name[len(group_prefix):].decode())
                if not members:
                    return
                message = msgpack.unpackb(data)
                if not isinstance(message, dict):
                    raise TypeError(f"a group message must be a dict, not {type(message).__name__}")
                for channel in tuple(members):
                    self._deliver(channel, message)
            else:
                channel, message = msgpack.unpackb(data)
                if not isinstance(message, dict):
                    raise TypeError(f"a message must be a dict, not {type(message).__name__}")
                self._deliver(channel, message)
        except Exception:  # noqa: BLE001 - see the docstring
            logger.exception("channel layer: dropped a message on %r that could not be delivered", name)
            metrics.LAYER_FAILED["receive"].inc()

    def _deliver(self, channel, message):
        """Give ``message`` to the local ``channel``: its direct handler, or its queue.

        Returns False when the channel is unknown here or its queue is full
        (``send`` raises ``ChannelFull`` then; a group member just misses it).
        """
        queue = self.queues.get(channel)
        if queue is None:
            return False
        if queue.empty():
            handler = self.direct.get(channel, {}).get(message.get("type"))
            if handler is not None and self._call_direct(channel, handler, message):
                return True
        if queue.full():
            if channel in self.watchers and channel not in self.overflowed:
                # It can catch up from its own records: tell it to (once), instead of a silent gap.
                self.overflowed.add(channel)
                self._fail(queue, {"type": RECONNECTED, "seconds": 0.0, "overflow": True})
            return False
        queue.put_nowait(message)
        return True

    def _call_direct(self, channel, handler, message):
        """Run ``handler(message)``; return True if it took the message."""
        try:
            taken = handler(message)
            if inspect.isawaitable(taken):
                if inspect.iscoroutine(taken):
                    taken.close()
                raise TypeError("a direct handler returned an awaitable: it must be a plain function")
        except Exception:  # noqa: BLE001 - see deliver_directly
            logger.exception("channel layer: direct handler of %s failed; queueing instead", channel)
            self.direct.pop(channel, None)
            return False
        if taken is False:
            return False
        metrics.LAYER_OK["direct"].inc()
        return True

    def _on_down(self, shard, error):
        """A shard's subscription broke: fail the receives that cannot wait, arm the grace timer."""
        first = not self.down
        self.down[shard] = (error, time.monotonic())
        failure = _Failure(lost_redis(error))
        for channel, queue in self.queues.items():
            if channel not in self.watchers:
                self._fail(queue, failure)
        if first and self.loop is not None:
            self.grace_timer = self.loop.call_later(self.reconnect_grace, self._grace_expired)

    def _grace_expired(self):
        if not self.down:
            return
        failure = _Failure(self._down_error())
        for channel in tuple(self.watchers):
            queue = self.queues.get(channel)
            if queue is not None:
                self._fail(queue, failure)

    @staticmethod
    def _fail(queue, item):
        """Put ``item`` (a failure or a notice) in ``queue`` even when full (the oldest message makes room)."""
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(item)

    def _on_up(self, shard, seconds_down):
        """A shard is subscribed again: tell the watching channels (``channel_layer.reconnected``)."""
        if shard not in self.down:
            return
        del self.down[shard]
        if self.down:
            return  # another shard is still down
        if self.grace_timer is not None:
            self.grace_timer.cancel()
            self.grace_timer = None
        notice = {"type": RECONNECTED, "seconds": seconds_down}
        for channel in tuple(self.watchers):
            queue = self.queues.get(channel)
            if queue is not None and not self._deliver(channel, notice):
                self._fail(queue, notice)  # full: the notice replaces the oldest message, which it covers

    # --- groups ----------------------------------------------------------------

    async def group_add(self, group, channel):
        """Add the local ``channel`` to ``group``; returns once this worker's subscription is confirmed.

        Raises ``ValueError`` for a channel of another process,
        ``redis.ConnectionError`` when the worker has no subscription to
        Redis (the membership is not kept), ``TimeoutError`` when Redis does
        not confirm within :data:`SUBSCRIBE_TIMEOUT` seconds.
        """
        assert self.require_valid_group_name(group), "Group name not valid"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        if self._token_of(channel) != self.client_token:
            raise ValueError(f"{type(self).__name__}.group_add: channel {channel!r} belongs to another process; "
                             "add it to groups from its own consumer")
        key, shard = self._group_key(group), self._shard(group)
        subscription = self._subscriptions()[shard]
        await self._wait_up(shard, subscription)
        self.groups[group].add(channel)
        self.memberships[channel].add(group)
        try:
            await subscription.subscribe(key)
        except BaseException:
            if self._discard_member(group, channel):
                self._unsubscribe_soon(group)
            raise

    async def group_discard(self, group, channel):
        """Remove ``channel`` from ``group`` in this process (unsubscribing when it was the last member here)."""
        assert self.require_valid_group_name(group), "Group name not valid"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        if self._discard_member(group, channel) and self.subscriptions is not None:
            await self.subscriptions[self._shard(group)].unsubscribe(self._group_key(group))

    def _discard_member(self, group, channel):
        """Drop the membership; return True when ``group`` has no local member left."""
        self.memberships.get(channel, set()).discard(group)
        members = self.groups.get(group)
        if members is None:
            return False
        members.discard(channel)
        if members:
            return False
        del self.groups[group]
        return True

    async def group_send(self, group, message):
        """Publish ``message`` (dict) to ``group``: one Redis ``PUBLISH``, whatever the group's size.

        Raises ``redis.RedisError`` (e.g. ``ConnectionError``) or ``OSError``
        when Redis cannot be reached: at once while this worker knows the
        group's shard is down, else after at most ``PUBLISH_TIMEOUT`` seconds.
        In a worker that receives (one that holds local channels), a
        ``group_send`` that raised is always followed by
        ``channel_layer.reconnected`` to its watching channels: a failed
        ``PUBLISH`` starts the shard's subscription over (:meth:`_Subscription.restart`),
        so a consumer that stored the message first may keep its socket open
        and leave the delivery to its catch-up (the chat consumer does).
        """
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_group_name(group), "Group name not valid"
        shard = self._shard(group)
        with _counted("group_send"):
            if self.subscriptions is not None and shard in self.down:
                # This worker knows that shard is unreachable: fail now, not after a timeout.
                raise self._down_error(shard)
            try:
                await self._publisher(shard).publish(self._group_key(group), msgpack.packb(message))
            except (RedisError, OSError) as exc:
                self._publish_failed(shard, exc)
                raise

    def _publish_failed(self, shard, error):
        """A ``PUBLISH`` to ``shard`` failed: start this loop's subscription to it over (see :meth:`group_send`)."""
        if self.subscriptions is None or self.loop is not asyncio.get_running_loop():
            return  # a process that only sends (gunicorn), or another loop's call: no watcher here to tell
        self.subscriptions[shard].restart(error)

    # --- sending to one channel ------------------------------------------------

    async def send(self, channel, message):
        """Send ``message`` (dict) to ``channel``.

        A local channel gets it straight away (``ChannelFull`` when its queue
        is full); one of another process through Redis (``PUBLISH``, lost if
        that process is gone, like any at-most-once send); a channel without
        ``!`` through the core layer (a queue in Redis).
        """
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        with _counted("send"):
            if "!" not in channel:
                return await self._core_layer().send(channel, message)
            token = self._token_of(channel)
            if token == self.client_token and channel in self.queues:
                if not self._deliver(channel, message):
                    raise ChannelFull()
                return
            await self._publisher(self._shard(token)).publish(self._process_key(token),
                                                              msgpack.packb([channel, message]))

    def _publisher(self, shard):
        """Return this event loop's client (``redis.asyncio.Redis``) of ``shard``.

        One per loop: gunicorn's ``async_to_sync`` runs each call in a loop of
        its own, and a connection is bound to its loop. Closing the loop closes
        its clients (the way channels_redis wraps ``loop.close``).
        """
        loop = asyncio.get_running_loop()
        clients = self.publishers.get(loop)
        if clients is None:
            for old in [old for old in self.publishers if old.is_closed()]:
                del self.publishers[old]
            # A PUBLISH answers in a millisecond: PUBLISH_TIMEOUT, not the core layer's blocking pops'
            # LAYER_READ_TIMEOUT, so a sender meets a vanished primary at once and its socket closes
            # with 1013 instead of queueing frames (switchyard.redis_connections).
            clients = self.publishers[loop] = [
                redis.asyncio.Redis(connection_pool=create_pool({**host, "socket_timeout": PUBLISH_TIMEOUT}))
                for host in self.hosts]
            _close_with_loop(loop, self, clients)
        return clients[shard]

    def _core_layer(self):
        if self._core is None:
            self._core = RedisChannelLayer(**self.core_options)
        return self._core

    async def flush(self):
        """Forget every local channel and group, and flush the core layer's keys (Channels' ``flush`` extension)."""
        core = self._core_layer()
        await self.close()
        await core.flush()

    async def close(self):
        """Stop reading: end the subscriptions and forget every local channel and group (nothing in Redis changes)."""
        subscriptions = self.subscriptions
        self._reset()
        for subscription in subscriptions or ():
            if subscription.task is not None:
                subscription.task.cancel()
            if subscription.connection is not None:
                await subscription._discard(subscription.connection)


def _close_with_loop(loop, layer, clients):
    """Close ``clients`` when ``loop`` closes (channels_redis.utils._wrap_close's approach)."""
    original = loop.close

    def close(self, *args, **kwargs):
        if layer.publishers.pop(loop, None) is not None and not self.is_running():
            for client in clients:
                try:
                    self.run_until_complete(client.aclose(close_connection_pool=True))
                except Exception:  # noqa: BLE001 - closing a loop must not fail on a dead connection
                    pass
        self.close = original
        return original(*args, **kwargs)

    loop.close = types.MethodType(close, loop)
