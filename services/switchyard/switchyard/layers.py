"""The channel layer Switchyard runs: channels_redis' core layer with a receive that survives cancellation.

**Why.** In channels_redis 4.3 (``channels_redis.core.RedisChannelLayer``) the
consumers of one process take turns at a lock; the holder runs ``BZPOPMIN`` on
the process's Redis key for everyone and puts what it pops into the buffer of
the channel it is for. Channels cancels a consumer's ``receive()`` whenever the
consumer ends (``channels.utils.await_many_dispatch``), that is at every
disconnect, and when the cancelled one holds the lock the Redis command is
interrupted:

- a message Redis already popped for *another* socket is lost with the
  dropped reply (channels_redis#366, channels#1683);
- a cancellation that lands as redis-py's ``asyncio.wait_for`` around a send
  completes is swallowed by Python 3.11's ``wait_for`` (CPython gh-86296,
  fixed in 3.12): the receive goes on popping, the consumer never ends, and
  daphne kills it after ``application_close_timeout`` (10 s; "took too long
  to shut down and was killed" in the worker log), which interrupts the pop
  again;
- a cancellation while waiting for the per-key cleanup lock releases a lock
  it does not hold, so a pop can start before the previous message left the
  backup queue.

In the stack tests this showed as a worker that delivered nothing to a
socket for ~10 s after a neighbour disconnected (docs/reliability.md,
"Channel layer receive").

**What changes.** One reader task per layer and event loop pops the
process's key (channels_redis' own ``receive_single``, with its backup queue)
and hands each message to the buffer of its channel. ``receive()`` on a
process-specific channel only waits on that buffer, so cancelling it never
interrupts Redis I/O. Messages for a channel whose ``receive()`` was
cancelled (its consumer ended) are dropped instead of buffered forever. If
the reader fails (Redis lost), every waiting ``receive()`` raises its error,
as channels_redis' own receive does, and the next ``receive()`` starts a new
reader. The shape is that of channels_redis' ``RedisPubSubChannelLayer`` (one
reader, per-channel queues) and of channels_redis PR #165.

Sending, groups, capacity, expiry and non-specific channels are
channels_redis' own, unchanged; ``send``, ``group_send`` and ``receive``
are counted (``switchyard_channel_layer_messages_total``, ``_errors_total``,
``switchyard.metrics``).
"""

import asyncio
import collections
import logging

from channels_redis import core

from switchyard import metrics

logger = logging.getLogger(__name__)


class _counted:
    """Count one channel-layer ``operation``: a success, or an error (any exception but cancellation), re-raised."""

    def __init__(self, operation):
        self.operation = operation

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            metrics.LAYER_OK[self.operation].inc()
        elif not issubclass(exc_type, asyncio.CancelledError):
            metrics.LAYER_FAILED[self.operation].inc()
        return False


class RedisChannelLayer(core.RedisChannelLayer):
    """``channels_redis.core.RedisChannelLayer`` whose process-specific ``receive()`` may be cancelled safely.

    Same constructor arguments as channels_redis' (``hosts``, ``prefix``,
    ``expiry`` in seconds, ``group_expiry`` in seconds, ``capacity`` in
    messages per channel, ...). See the module docstring for the reader.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Process-specific channels a consumer may still receive on: from
        # new_channel() (or a first receive()) until a receive() is cancelled.
        self.live_channels = set()
        # receive() calls waiting, by channel (collections.Counter).
        self.waiting = collections.Counter()
        # Channels with a waiting receive() and nothing buffered: the reader
        # pops while this is not empty, and stops between pops once it is.
        self.hungry = set()
        # The asyncio.Task popping this process's key, or None.
        self.reader = None
        # True from a reader's failure until a later reader pops again (a reconnect).
        self.reader_failed = False

    async def new_channel(self, prefix="specific"):
        """Return a new process-specific channel name (str) and start buffering its messages."""
        channel = await super().new_channel(prefix)
        self.live_channels.add(channel)
        return channel

    async def send(self, channel, message):
        """channels_redis' ``send``, counted (errors by operation; the error is re-raised)."""
        with _counted("send"):
            await super().send(channel, message)

    async def group_send(self, group, message):
        """channels_redis' ``group_send``, counted (errors by operation; the error is re-raised)."""
        with _counted("group_send"):
            await super().group_send(group, message)

    async def receive(self, channel):
        """Return the next message (dict) of ``channel``, counted (see :meth:`_receive`)."""
        with _counted("receive"):
            return await self._receive(channel)

    async def _receive(self, channel):
        """Return the next message (dict) of ``channel``.

        Process-specific channels (``"...!..."``) wait on their buffer, fed by
        the reader; other channels are channels_redis' plain receive.

        Raises the reader's error (``redis.exceptions.RedisError``, e.g.
        ``ConnectionError`` when Redis is unreachable) to every waiting
        receive; ``asyncio.CancelledError`` when cancelled, after which the
        channel's buffered and later messages are dropped.
        """
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        real_channel = self.non_local_name(channel)
        assert real_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        self.live_channels.add(channel)
        self.waiting[channel] += 1
        try:
            while self.receive_buffer[channel].empty():
                self.hungry.add(channel)
                reader = self._running_reader(real_channel)
                getter = asyncio.ensure_future(self.receive_buffer[channel].get())
                try:
                    await asyncio.wait((getter, reader), return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    getter.cancel()
                    self.live_channels.discard(channel)
                    self.receive_buffer.pop(channel, None)
                    raise
                if getter.done():
                    return getter.result()
                getter.cancel()  # a cancelled Queue.get() leaves the item in the queue
                reader.result()  # the reader failed: raise its error
            return self.receive_buffer[channel].get_nowait()
        finally:
            self.waiting[channel] -= 1
            if not self.waiting[channel]:
                del self.waiting[channel]
                self.hungry.discard(channel)
                # Like channels_redis: an empty buffer goes (a queue is bound
                # to the event loop that first waited on it).
                buffer = self.receive_buffer.get(channel)
                if buffer is not None and buffer.empty():
                    del self.receive_buffer[channel]

    def _running_reader(self, real_channel):
        """Return the reader task of this event loop, starting one if none runs.

        Raises ``RuntimeError`` when a reader runs in another event loop that is
        still open (channels_redis' own rule: one receiving loop per layer).
        """
        loop = asyncio.get_running_loop()
        if self.reader is not None and not self.reader.done():
            reader_loop = self.reader.get_loop()
            if reader_loop is loop:
                return self.reader
            if not reader_loop.is_closed():
                raise RuntimeError("Two event loops are trying to receive() on one channel layer at once!")
        self.reader = loop.create_task(self._read(real_channel), name=f"channel layer reader {real_channel}")
        self.reader.add_done_callback(self._reader_done)
        return self.reader

    async def _read(self, real_channel):
        """Pop ``real_channel`` and buffer each message for its live channels, while a receive is hungry."""
        while self.hungry:
            message_channel, message = await self.receive_single(real_channel)
            if self.reader_failed:
                self.reader_failed = False
                metrics.CHANNEL_LAYER_RECONNECTS.inc()
            targets = message_channel if isinstance(message_channel, list) else [message_channel]
            for target in targets:
                if target in self.live_channels:
                    self.receive_buffer[target].put_nowait(message)
                    self.hungry.discard(target)

    async def _brpop_with_clean(self, index, channel, timeout):
        """channels_redis' pop (one ``BZPOPMIN`` of up to ``timeout`` seconds), refusing to start after a lost cancellation.

        On Python 3.11, a cancellation that arrives as redis-py's
        ``asyncio.wait_for`` around a send completes is swallowed (CPython
        gh-86296) and the task goes on, marked as cancelling; channels_redis
        then pops again forever. Raising it here ends the reader (or a plain
        receive) within one pop, e.g. when the event loop shuts down.
        """
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError()
        return await super()._brpop_with_clean(index, channel, timeout)

    def _reader_done(self, reader):
        if not reader.cancelled() and reader.exception() is not None:
            logger.warning("channel layer reader stopped: %s", reader.exception())
            metrics.LAYER_FAILED["reader"].inc()
            self.reader_failed = True

    async def flush(self):
        """Delete every message and group (channels_redis' flush) and forget buffered messages."""
        self.receive_buffer.clear()
        await super().flush()
