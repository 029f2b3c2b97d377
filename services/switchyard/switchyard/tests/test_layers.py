"""switchyard.layers.RedisChannelLayer against a real Redis of each test's own."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from redis.exceptions import RedisError

from switchyard.layers import RedisChannelLayer


def layer_of(server, **config):
    return RedisChannelLayer(hosts=[{"address": server.url, "socket_timeout": 15}], prefix="test", **config)


async def finished(task, seconds):
    """Return True once ``task`` is done, False if it is still running after ``seconds``."""
    done, _ = await asyncio.wait([task], timeout=seconds)
    return bool(done)


@pytest.mark.asyncio
async def test_cancelled_receives_end_at_once_and_cost_other_channels_nothing(own_redis):
    """The disconnect race: a consumer's receive is cancelled as a message for its neighbour arrives.

    channels_redis 4.3's own receive, in this loop on this machine, ignored
    about 1 cancellation in 150 (Python 3.11's wait_for inside redis-py), and
    such a receive never ends (docs/reliability.md, "Channel layer receive").
    """
    layer, sender = layer_of(own_redis), layer_of(own_redis)
    neighbour = await layer.new_channel()
    received = []

    async def keep_receiving():
        while True:
            received.append((await layer.receive(neighbour))["n"])

    neighbour_task = asyncio.ensure_future(keep_receiving())
    rounds, ignored = 300, 0
    for n in range(rounds):
        leaving = asyncio.ensure_future(layer.receive(await layer.new_channel()))
        await asyncio.sleep(0.002)  # it waits now, maybe as the one popping
        send = asyncio.ensure_future(sender.send(neighbour, {"type": "x", "n": n}))
        await asyncio.sleep((n % 20) * 0.0001)  # cancel at varied points of the send and pop
        leaving.cancel()
        await send
        ignored += not await finished(leaving, 1)
    for _ in range(50):
        if len(received) == rounds:
            break
        await asyncio.sleep(0.1)
    neighbour_task.cancel()
    assert await finished(neighbour_task, 1)
    assert ignored == 0, f"{ignored} of {rounds} cancelled receives were still running after 1 s"
    assert received == list(range(rounds))


@pytest.mark.asyncio
async def test_a_cancelled_reader_ends_within_one_pop(own_redis):
    """What an event loop's shutdown does: cancel every task, the reader among them, and wait.

    Python 3.11's wait_for in redis-py swallows some of these cancellations
    (CPython gh-86296); without the guard in ``_brpop_with_clean`` such a
    reader pops forever and the shutdown hangs.
    """
    layer = layer_of(own_redis)
    layer.brpop_timeout = 0.2  # seconds (BZPOPMIN takes decimals): a swallowed cancel costs one short pop
    rounds, hung = 150, 0
    for n in range(rounds):
        receiving = asyncio.ensure_future(layer.receive(await layer.new_channel()))
        for _ in range(1 + n % 30):  # cancel at varied steps of the reader's first sends
            await asyncio.sleep(0)
        reader = layer.reader
        reader.cancel()
        hung += not await finished(reader, layer.brpop_timeout + 1)
        receiving.cancel()
        await asyncio.wait([receiving], timeout=1)
    assert hung == 0, f"{hung} of {rounds} cancelled readers were still running after one pop"


@pytest.mark.asyncio
async def test_group_send_reaches_every_channel_of_the_process(own_redis):
    layer, sender = layer_of(own_redis), layer_of(own_redis)
    first, second = await layer.new_channel(), await layer.new_channel()
    await sender.group_add("room", first)
    await sender.group_add("room", second)
    await sender.group_send("room", {"type": "chat.message", "body": "hello"})
    assert (await asyncio.wait_for(layer.receive(first), 5))["body"] == "hello"
    assert (await asyncio.wait_for(layer.receive(second), 5))["body"] == "hello"


@pytest.mark.asyncio
async def test_messages_for_a_channel_whose_receive_was_cancelled_are_dropped(own_redis):
    layer, sender = layer_of(own_redis), layer_of(own_redis)
    gone, staying = await layer.new_channel(), await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(gone))
    await asyncio.sleep(0.05)
    waiting.cancel()
    assert await finished(waiting, 1)
    await sender.send(gone, {"type": "x", "n": 1})
    await sender.send(staying, {"type": "x", "n": 2})
    # The reader pops in order: once the second arrived, the first was handled.
    assert (await asyncio.wait_for(layer.receive(staying), 5))["n"] == 2
    assert gone not in layer.receive_buffer
    assert gone not in layer.live_channels


@pytest.mark.asyncio
async def test_a_message_sent_before_anyone_receives_is_kept(own_redis):
    layer, sender = layer_of(own_redis), layer_of(own_redis)
    channel = await layer.new_channel()
    await sender.send(channel, {"type": "x", "n": 1})
    await sender.send(channel, {"type": "x", "n": 2})
    assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(2)] == [1, 2]


@pytest.mark.asyncio
async def test_redis_lost_raises_in_every_waiting_receive_and_a_later_receive_recovers(own_redis):
    """What the consumer's 1013 close relies on: a receive fails when Redis goes away."""
    layer, sender = layer_of(own_redis), layer_of(own_redis)
    first, second = await layer.new_channel(), await layer.new_channel()
    waiting = [asyncio.ensure_future(layer.receive(channel)) for channel in (first, second)]
    await asyncio.sleep(0.1)
    own_redis.stop()
    done, _ = await asyncio.wait(waiting, timeout=10)
    assert len(done) == 2
    for task in waiting:
        assert isinstance(task.exception(), RedisError)
    own_redis.start()
    receiving = asyncio.ensure_future(layer.receive(first))
    await asyncio.sleep(0.1)
    await sender.send(first, {"type": "x", "n": 1})
    assert (await asyncio.wait_for(receiving, 5))["n"] == 1


@pytest.mark.asyncio
async def test_the_reader_stops_when_no_one_receives(own_redis):
    layer, sender = layer_of(own_redis), layer_of(own_redis)
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    await sender.send(channel, {"type": "x", "n": 1})
    assert (await asyncio.wait_for(receiving, 5))["n"] == 1
    assert await finished(layer.reader, 1), "the reader kept popping with no receiver"


@pytest.mark.django_db(transaction=False)
def test_receives_from_short_lived_event_loops_lose_nothing(own_redis):
    """``async_to_sync`` runs each call in a loop of its own; the reader must not outlive it mid-pop."""
    layer, sender = layer_of(own_redis), layer_of(own_redis)
    channel = async_to_sync(layer.new_channel)()
    for n in range(3):
        async_to_sync(sender.send)(channel, {"type": "x", "n": n})
    assert [async_to_sync(layer.receive)(channel)["n"] for _ in range(3)] == [0, 1, 2]
