"""chat.presence against a real Redis: two Presence objects stand for two workers."""

import asyncio

import pytest

from chat.presence import Presence

pytestmark = pytest.mark.asyncio


def worker(redis_url, announced, ttl=1, heartbeat=0.2):
    async def on_change(room, users):
        announced.append((room, users))

    return Presence(redis_url, ttl=ttl, heartbeat=heartbeat, prefix="test", on_change=on_change)


async def test_a_dead_workers_users_leave_within_ttl_plus_heartbeat(live_redis):
    announced = []
    alive, dead = worker(live_redis, announced), worker(live_redis, announced)
    await alive.join("lobby", "alice", "chan-a")
    assert await dead.join("lobby", "bob", "chan-b") == ["alice", "bob"]
    # "kill -9" the second worker: its heartbeat stops, no leave runs.
    dead._task.cancel()
    dead.local.clear()
    started = asyncio.get_running_loop().time()
    while not announced:
        await asyncio.sleep(0.05)
        assert asyncio.get_running_loop().time() - started < 1 + 0.2 + 1, "bob never left"
    assert announced == [("lobby", ["alice"])]  # one announcement, by the live worker
    assert await alive.users("lobby") == ["alice"]
    await alive.close()
    await dead.close()


async def test_two_tabs_count_once_and_leave_keeps_the_other(live_redis):
    tabs = worker(live_redis, [], ttl=30)
    await tabs.join("lobby", "alice", "tab-1")
    assert await tabs.join("lobby", "alice", "tab-2") == ["alice"]
    assert await tabs.leave("lobby", "alice", "tab-1") == ["alice"]
    assert await tabs.leave("lobby", "alice", "tab-2") == []
    assert tabs.local == {}
    await tabs.close()


async def test_heartbeat_keeps_live_members_past_the_ttl(live_redis):
    keeper = worker(live_redis, [], ttl=1, heartbeat=0.3)
    await keeper.join("lobby", "alice", "chan-a")
    await asyncio.sleep(1.6)
    assert await keeper.users("lobby") == ["alice"]
    await keeper.close()


async def test_a_burst_of_joins_is_announced_once_at_once_and_once_after_the_interval(live_redis):
    announced = []
    burst = Presence(live_redis, ttl=30, heartbeat=10, prefix="test", on_change=lambda *a: _record(announced, *a),
                     announce_interval=0.3)
    for n in range(20):
        await burst.join("lobby", f"user{n:02}", f"chan-{n}")
        burst.changed("lobby")
    while len(announced) < 2:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a third announcement would have come by now
    first, last = announced[0][1], announced[-1][1]
    # The first announcement goes out while the burst is still joining; the second has everyone.
    assert len(announced) == 2 and "user00" in first and last == [f"user{n:02}" for n in range(20)]
    assert burst._announcing == {}  # quiet again: the next change goes out at once
    await burst.close()


async def _record(announced, room, users):
    announced.append((room, users))


async def test_removals_that_fail_without_redis_are_retried_by_the_heartbeat(live_redis):
    """A socket closed while Redis refused writes (an outage, a Sentinel failover) stops counting once Redis is back.

    Redis refuses ZREM through an ACL for a moment: a real error from a real
    server, as a lost or read-only primary gives. Without the retry the
    closed socket would count against the per-user cap for the whole TTL.
    """
    import redis as redis_py

    from redis.exceptions import RedisError

    admin = redis_py.Redis.from_url(live_redis)
    announced = []
    tabs = worker(live_redis, announced, ttl=30, heartbeat=0.2)
    assert await tabs.claim("alice", "tab-1", cap=1)
    await tabs.join("lobby", "alice", "tab-1")
    admin.execute_command("ACL", "SETUSER", "default", "-zrem")
    try:
        with pytest.raises(RedisError):
            await tabs.release("alice", "tab-1")
        with pytest.raises(RedisError):
            await tabs.leave("lobby", "alice", "tab-1")
        await asyncio.sleep(0.5)  # heartbeats fail meanwhile and keep the removals
        assert tabs.unreleased == {"tab-1": "alice"} and tabs.unlisted == {"lobby": {"alice|tab-1"}}
    finally:
        admin.execute_command("ACL", "SETUSER", "default", "+zrem")
    for _ in range(50):
        if not tabs.unreleased and not tabs.unlisted:
            break
        await asyncio.sleep(0.05)
    assert tabs.unreleased == {} and tabs.unlisted == {}
    assert await tabs.users("lobby") == []
    assert ("lobby", []) in announced  # the room was told alice left
    assert await tabs.claim("alice", "tab-2", cap=1)  # the closed tab no longer counts
    await tabs.close()
