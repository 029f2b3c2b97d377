"""switchyard.fanout.FanoutChannelLayer against a real Redis of each test's own.

Two layer instances stand for two ASGI workers; a third, used from
``async_to_sync`` in another thread, for gunicorn.
"""

import asyncio
import threading

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull

from switchyard import fanout
from switchyard.fanout import RECONNECTED, FanoutChannelLayer

pytestmark = pytest.mark.asyncio


def layer_of(server, **config):
    return FanoutChannelLayer(hosts=[{"address": server.url, "socket_timeout": 15}], prefix="test", **config)


def publishes(server):
    """Number of PUBLISH commands the server has run (INFO commandstats)."""
    stats = redis.Redis.from_url(server.url).info("commandstats")
    return stats.get("cmdstat_publish", {}).get("calls", 0)


async def member(layer, group="g"):
    """A new channel of ``layer`` that has joined ``group``."""
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def receive_soon(layer, channel, seconds=2):
    return await asyncio.wait_for(layer.receive(channel), seconds)


@pytest.fixture
def fast_heartbeat(monkeypatch):
    monkeypatch.setattr(fanout, "HEARTBEAT_INTERVAL", 0.2)
    monkeypatch.setattr(fanout, "HEARTBEAT_TIMEOUT", 1.0)


async def test_groups_are_sharded_by_name_as_the_core_layer_shards_them(own_redis, tmp_path):
    from conftest import RedisServer

    from switchyard.layers import RedisChannelLayer

    second = RedisServer(tmp_path / "second")
    (tmp_path / "second").mkdir()
    second.start()
    try:
        hosts = [{"address": own_redis.url}, {"address": second.url}]
        layer, core = FanoutChannelLayer(hosts=hosts, prefix="test"), RedisChannelLayer(hosts=hosts, prefix="test")
        groups = [f"chat.room{n}" for n in range(20)]
        for group in groups:
            await layer.group_add(group, await layer.new_channel())
        servers = [redis.Redis.from_url(own_redis.url), redis.Redis.from_url(second.url)]
        for group in groups:
            holders = [i for i, server in enumerate(servers) if server.pubsub_numsub(f"test:group:{group}")[0][1]]
            assert holders == [core.consistent_hash(group)], group
        await layer.flush()
    finally:
        second.stop()


async def test_a_group_message_is_one_publish_whatever_the_members(own_redis):
    workers = [layer_of(own_redis), layer_of(own_redis)]
    members = []
    for worker in workers:
        for _ in range(50):
            channel = await worker.new_channel()
            await worker.group_add("room", channel)
            members.append((worker, channel))
    before = publishes(own_redis)
    await workers[0].group_send("room", {"type": "chat.message", "n": 1})
    assert publishes(own_redis) - before == 1  # 100 members on 2 workers: one PUBLISH
    got = [await receive_soon(worker, channel) for worker, channel in members]
    assert got == [{"type": "chat.message", "n": 1}] * 100
    for worker in workers:
        await worker.flush()


async def test_a_view_on_another_loop_reaches_a_worker(own_redis):
    """gunicorn's case: async_to_sync runs each group_send in an event loop of its own."""
    worker, view = layer_of(own_redis), layer_of(own_redis)
    channel = await worker.new_channel()
    await worker.group_add("room", channel)

    def post(n):
        async_to_sync(view.group_send)("room", {"type": "x", "n": n})

    for n in range(3):
        thread = threading.Thread(target=post, args=(n,))
        thread.start()
        await asyncio.to_thread(thread.join)
    assert [(await receive_soon(worker, channel))["n"] for _ in range(3)] == [0, 1, 2]
    assert all(loop.is_closed() is False for loop in view.publishers)  # closed loops' clients were dropped
    await worker.flush()


async def test_send_reaches_a_channel_here_or_in_another_process(own_redis):
    one, two = layer_of(own_redis), layer_of(own_redis)
    here, there = await one.new_channel(), await two.new_channel()
    await one.send(here, {"type": "a"})
    await one.send(there, {"type": "b"})
    assert await receive_soon(one, here) == {"type": "a"}
    assert await receive_soon(two, there) == {"type": "b"}
    await one.flush()
    await two.flush()


async def test_a_full_local_channel_raises_channel_full_and_a_full_member_misses_the_group_message(own_redis):
    layer = layer_of(own_redis, capacity=2)
    channel = await member(layer)
    await layer.send(channel, {"type": "a"})
    await layer.send(channel, {"type": "b"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "c"})
    await layer.group_send("g", {"type": "d"})
    await asyncio.sleep(0.2)
    assert [(await receive_soon(layer, channel))["type"] for _ in range(2)] == ["a", "b"]
    with pytest.raises(asyncio.TimeoutError):
        await receive_soon(layer, await layer.new_channel(), 0.2)
    await layer.flush()


async def test_group_add_returns_only_once_the_subscription_is_confirmed(own_redis):
    """A message published the moment group_add returns is received (the welcome's race)."""
    worker, sender = layer_of(own_redis), layer_of(own_redis)
    for n in range(30):
        channel = await worker.new_channel()
        await worker.group_add(f"g{n}", channel)
        await sender.group_send(f"g{n}", {"type": "x", "n": n})
        assert (await receive_soon(worker, channel))["n"] == n
    await worker.flush()


async def test_discarded_and_ended_channels_get_nothing_and_the_last_one_unsubscribes(own_redis):
    layer = layer_of(own_redis)
    kept, discarded, ended = [await layer.new_channel() for _ in range(3)]
    for channel in (kept, discarded, ended):
        await layer.group_add("g", channel)
    await layer.group_discard("g", discarded)
    receiving = asyncio.ensure_future(layer.receive(ended))
    await asyncio.sleep(0.05)
    receiving.cancel()  # the consumer ended
    await asyncio.wait([receiving])
    await layer.group_send("g", {"type": "x"})
    assert await receive_soon(layer, kept) == {"type": "x"}
    assert ended not in layer.queues and ended not in layer.groups["g"]
    with pytest.raises(asyncio.TimeoutError):
        await receive_soon(layer, discarded, 0.2)
    await layer.group_discard("g", kept)
    await asyncio.sleep(0.1)
    channels = redis.Redis.from_url(own_redis.url).pubsub_channels("test:group:*")
    assert channels == []
    await layer.flush()


async def test_a_channel_of_another_process_cannot_join_a_group_here(own_redis):
    one, two = layer_of(own_redis), layer_of(own_redis)
    with pytest.raises(ValueError, match="belongs to another process"):
        await one.group_add("g", await two.new_channel())
    await one.flush()
    await two.flush()


async def test_channels_without_bang_go_through_the_core_layers_queue(own_redis):
    layer, worker = layer_of(own_redis), layer_of(own_redis)
    await layer.send("thumbnails", {"type": "job", "n": 1})
    assert await receive_soon(worker, "thumbnails") == {"type": "job", "n": 1}
    await layer.flush()


async def test_a_lost_redis_fails_plain_receives_and_tells_watchers_once_it_is_back(own_redis, fast_heartbeat):
    worker, sender = layer_of(own_redis), layer_of(own_redis)
    plain, watching = await worker.new_channel(), await worker.new_channel()
    for channel in (plain, watching):
        await worker.group_add("g", channel)
    worker.watch_reconnects(watching)
    plain_receive = asyncio.ensure_future(worker.receive(plain))
    watching_receive = asyncio.ensure_future(worker.receive(watching))
    own_redis.stop()
    with pytest.raises(redis.ConnectionError):
        await asyncio.wait_for(plain_receive, 3)
    with pytest.raises(redis.ConnectionError):  # joining while Redis is away fails at once
        await asyncio.wait_for(worker.group_add("g", await worker.new_channel()), 1)
    with pytest.raises(redis.ConnectionError):  # and so does sending from this worker: no timeout to wait out
        await asyncio.wait_for(worker.group_send("g", {"type": "x"}), 0.5)
    await asyncio.sleep(0.5)
    assert not watching_receive.done()  # the watcher waits through the outage
    own_redis.start()
    notice = await asyncio.wait_for(watching_receive, 5)
    assert notice["type"] == RECONNECTED and notice["seconds"] > 0.4
    await sender.group_send("g", {"type": "after"})  # the subscription came back with the group
    assert await receive_soon(worker, watching) == {"type": "after"}
    await worker.flush()


async def test_a_watcher_gives_up_after_the_grace(own_redis, fast_heartbeat):
    worker = layer_of(own_redis, reconnect_grace=0.5)
    watching = await worker.new_channel()
    await worker.group_add("g", watching)
    worker.watch_reconnects(watching)
    receiving = asyncio.ensure_future(worker.receive(watching))
    own_redis.stop()
    with pytest.raises(redis.ConnectionError):
        await asyncio.wait_for(receiving, 3)
    own_redis.start()
    await worker.flush()


async def test_direct_handlers_take_messages_inline_or_hand_them_back(own_redis):
    layer = layer_of(own_redis)
    channel = await member(layer)
    taken = []

    def handler(message):
        if message["n"] == 1:
            return False  # e.g. a gap: queue it for receive()
        taken.append(message["n"])

    layer.deliver_directly(channel, "x", handler)
    await layer.group_send("g", {"type": "other", "n": 0})  # no direct handler for this type: queued
    await asyncio.sleep(0.1)
    assert await receive_soon(layer, channel) == {"type": "other", "n": 0}
    for n in range(5):
        await layer.group_send("g", {"type": "x", "n": n})
    await asyncio.sleep(0.2)
    got = [(await receive_soon(layer, channel))["n"] for _ in range(3)]
    assert taken == [0]  # 1 was handed back; 2-4 then queued behind it, in order
    assert got == [1, 2, 3] and (await receive_soon(layer, channel))["n"] == 4
    for n in range(5, 8):  # the queue is empty again: direct once more
        await layer.group_send("g", {"type": "x", "n": n})
    await asyncio.sleep(0.2)
    assert taken == [0, 5, 6, 7]
    await layer.flush()


async def test_a_direct_handler_must_be_a_plain_function(own_redis):
    """Awaiting inside the reader would hold every socket of the worker behind one (and bind asyncio.timeout to it)."""
    layer = layer_of(own_redis)
    channel = await layer.new_channel()

    async def coroutine_handler(message):
        pass

    with pytest.raises(TypeError, match="plain function"):
        layer.deliver_directly(channel, "x", coroutine_handler)
    await layer.flush()


async def test_a_failing_direct_handler_is_dropped_and_its_message_queued(own_redis):
    layer = layer_of(own_redis)
    channel = await member(layer)

    def broken(message):
        raise OSError("client gone")

    layer.deliver_directly(channel, "x", broken)
    await layer.group_send("g", {"type": "x", "n": 1})
    assert await receive_soon(layer, channel) == {"type": "x", "n": 1}
    assert channel not in layer.direct
    await layer.flush()


async def test_a_silent_redis_is_detected_by_the_heartbeat(own_redis, fast_heartbeat):
    """A Redis that stops answering without closing (SIGSTOP: a host gone from the network)."""
    import os
    import signal

    worker = layer_of(own_redis)
    channel = await member(worker)
    receiving = asyncio.ensure_future(worker.receive(channel))
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(receiving, 4)
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    await worker.flush()


async def test_a_message_that_cannot_be_decoded_is_dropped_and_the_subscription_lives(own_redis):
    worker = layer_of(own_redis)
    channel = await member(worker)
    redis.Redis.from_url(own_redis.url).publish("test:group:g", b"\xc1 not msgpack")
    redis.Redis.from_url(own_redis.url).publish("test:group:g", __import__("msgpack").packb([1, 2]))
    await layer_of(own_redis).group_send("g", {"type": "after"})
    assert await receive_soon(worker, channel) == {"type": "after"}
    assert not worker.down
    await worker.flush()


async def test_a_rejoin_right_after_the_last_member_ended_keeps_the_subscription(own_redis):
    """The unsubscribe of a group whose last member ended runs later; a member joining meanwhile must not lose it."""
    worker, sender = layer_of(own_redis), layer_of(own_redis)
    leaving = await worker.new_channel()
    await worker.group_add("g", leaving)
    receiving = asyncio.ensure_future(worker.receive(leaving))
    await asyncio.sleep(0.05)
    receiving.cancel()  # the last member's consumer ends: its unsubscribe is scheduled
    await asyncio.wait([receiving])
    joining = await worker.new_channel()
    await worker.group_add("g", joining)
    await asyncio.sleep(0.1)  # the scheduled unsubscribe has run
    await sender.group_send("g", {"type": "x"})
    assert await receive_soon(worker, joining) == {"type": "x"}
    await worker.flush()


async def test_a_watchers_full_queue_gets_the_reconnect_signal_instead_of_a_silent_gap(own_redis):
    worker = layer_of(own_redis, capacity=3)
    channel = await member(worker)
    worker.watch_reconnects(channel)
    for n in range(6):
        await worker.group_send("g", {"type": "x", "n": n})
    await asyncio.sleep(0.2)
    got = [await receive_soon(worker, channel) for _ in range(3)]
    assert [m.get("n") for m in got[:2]] == [1, 2] and got[2]["type"] == RECONNECTED  # the oldest made room once
    await worker.flush()


async def test_a_receive_that_raises_forgets_its_channel(own_redis, fast_heartbeat):
    worker = layer_of(own_redis)
    channel = await member(worker)
    receiving = asyncio.ensure_future(worker.receive(channel))
    own_redis.stop()
    with pytest.raises(redis.ConnectionError):
        await asyncio.wait_for(receiving, 3)
    assert channel not in worker.queues and "g" not in worker.groups
    own_redis.start()
    await worker.flush()


async def test_a_failed_publish_starts_the_subscription_over_and_tells_watchers(own_redis):
    """A ``PUBLISH`` that times out (Redis SIGSTOPped for 1 s, shorter than the heartbeat's timeout)."""
    import os
    import signal

    worker = layer_of(own_redis)
    watching = await member(worker)
    worker.watch_reconnects(watching)
    receiving = asyncio.ensure_future(worker.receive(watching))
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises((redis.RedisError, OSError)):
            await asyncio.wait_for(worker.group_send("g", {"type": "lost"}), 2)
        await asyncio.sleep(0.5)
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    # Well before HEARTBEAT_TIMEOUT (6 s): the subscription started over because of the failed publish.
    notice = await asyncio.wait_for(receiving, 4)
    assert notice["type"] == RECONNECTED and notice["seconds"] > 0
    await layer_of(own_redis).group_send("g", {"type": "after"})
    assert await receive_soon(worker, watching) == {"type": "after"}
    await worker.flush()


async def test_a_failed_publish_from_a_process_that_only_sends_touches_no_subscription(own_redis):
    sender = layer_of(own_redis)
    own_redis.stop()
    try:
        with pytest.raises((redis.RedisError, OSError)):
            await asyncio.wait_for(sender.group_send("g", {"type": "lost"}), 2)
        assert sender.subscriptions is None  # gunicorn's layer never starts a reader
    finally:
        own_redis.start()
