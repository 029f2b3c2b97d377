"""switchyard.redis_connections: the one parser of Redis URLs and maker of every Redis client.

Failover itself (real sentinels, a primary killed under load) is tested on a
native stack in tests/stack/test_redis_ha.py; here: the URL forms, what each
caller is handed, and the settings and system check that read them.
"""

import asyncio
import json

import pytest
import redis

from switchyard import redis_connections
from switchyard.redis_connections import RedisURLError, parse_url
from switchyard.tests.test_checks import switchyard_errors
from switchyard.tests.test_settings import settings_under

SENTINEL_URL = "redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/switchyard/3"


def test_a_sentinel_url_names_sentinels_master_database_and_password():
    target = parse_url(SENTINEL_URL)
    assert target.is_sentinel
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert (target.master, target.db, target.password, target.sentinel_password) == ("switchyard", 3, "s@cret", "s@cret")
    assert "s@cret" not in target.describe() and "cret" not in target.describe()


def test_the_sentinels_may_have_a_password_of_their_own():
    target = parse_url("redis+sentinel://:data@h1:1,h2:2/m?sentinel_password=watch")
    assert (target.password, target.sentinel_password, target.db) == ("data", "watch", 0)


def test_a_plain_url_stays_as_given():
    target = parse_url("rediss://:pw@cache:6380/1")
    assert not target.is_sentinel and target.password == "pw" and target.url == "rediss://:pw@cache:6380/1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:1/0", "scheme 'http' is not one of"),
        ("redis+sentinel://:pw@h1:1", "needs sentinel HOST:PORT pairs and the master's name"),
        ("redis+sentinel:///m", "needs sentinel HOST:PORT pairs"),
        ("redis+sentinel://h1:port/m", "sentinel address number 1 is not HOST:PORT"),
        ("redis+sentinel://::1/m", "sentinel address number 1 is not HOST:PORT"),
        ("redis+sentinel://h1:1/m/zero", "is not a number"),
    ],
)
def test_an_unusable_url_is_refused_with_its_problem(url, message):
    with pytest.raises(RedisURLError, match=message):
        parse_url(url)


def test_an_error_never_shows_the_password():
    with pytest.raises(RedisURLError) as refused:
        parse_url("redis+sentinel://:p#secret@h1:1/m")
    assert "secret" not in str(refused.value) and "p#" not in str(refused.value)


def test_the_channel_layer_gets_channels_redis_sentinel_form():
    host = redis_connections.channel_layer_host(SENTINEL_URL)
    assert host["sentinels"] == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)]
    assert host["master_name"] == "switchyard" and host["db"] == 3 and host["password"] == "s@cret"
    assert host["sentinel_kwargs"]["password"] == "s@cret"
    assert host["sentinel_kwargs"]["retry"].get_retries() == 0  # a dead sentinel: ask the next at once
    assert host["socket_timeout"] == redis_connections.LAYER_READ_TIMEOUT > 5  # above BZPOPMIN's 5 s
    # channels_redis turns it into a Sentinel-managed pool.
    from channels_redis.utils import create_pool

    assert type(create_pool(host)).__name__ == "SentinelConnectionPool"


def test_clients_retry_briefly_or_not_at_all_never_redis_pys_ten_times(redis_url):
    client = redis_connections.sync_client(redis_url)
    assert client.ping()
    assert client.get_connection_kwargs()["retry"].get_retries() == 0  # /healthz: an answer within its timeout
    background = redis_connections.async_client(redis_url)
    assert background.get_connection_kwargs()["retry"].get_retries() == redis_connections.RETRIES == 2
    assert redis_connections.channel_layer_host(redis_url)["retry"].get_retries() == 0


def test_a_sentinel_url_gives_clients_of_the_named_primary():
    client = redis_connections.sync_client(SENTINEL_URL)
    assert isinstance(client.connection_pool, redis.sentinel.SentinelConnectionPool)
    assert client.connection_pool.service_name == "switchyard"
    storage = redis_connections.limits_storage(SENTINEL_URL, key_prefix="t")
    assert type(storage).__name__ == "RedisSentinelStorage" and storage.use_replicas is False


def test_settings_spread_the_layer_over_space_separated_shards():
    code, values = settings_under({"SECRET_KEY": "k" * 50, "REDIS_URL": "redis://:pw@a:6379/0",
                                   "CHANNEL_LAYER_REDIS_URLS": f"redis://:pw@a:6379/0 {SENTINEL_URL}"})
    assert code == 0, values
    assert "'address': 'redis://:pw@a:6379/0'" in values["CHANNEL_LAYERS"]
    assert "'master_name': 'switchyard'" in values["CHANNEL_LAYERS"]


def test_settings_refuse_an_unusable_redis_url():
    code, stderr = settings_under({"SECRET_KEY": "k" * 50, "REDIS_URL": "redis+sentinel://h:1"})
    assert code != 0 and "ImproperlyConfigured: REDIS_URL / CHANNEL_LAYER_REDIS_URLS: a redis+sentinel:// URL" in stderr


@pytest.mark.parametrize(("password", "failing"), [("", True), (":pw@", False)])
def test_e005_sees_sentinel_urls_without_a_password(password, failing):
    url = f"redis+sentinel://{password}h1:26379,h2:26379/switchyard/0"
    errors = switchyard_errors(
        DEBUG=False, ALLOWED_HOSTS=["chat.example.com"], WEBSOCKET_ALLOWED_ORIGINS=["chat.example.com"], REDIS_URL=url,
        CHANNEL_LAYERS={"default": {"BACKEND": "switchyard.layers.RedisChannelLayer",
                                    "CONFIG": {"hosts": [redis_connections.channel_layer_host(url)]}}})
    assert ("switchyard.E005" in errors) is failing, json.dumps(errors)


def test_every_pool_holds_max_connections_not_redis_pys_100(redis_url):
    assert redis_connections.MAX_CONNECTIONS > 100
    assert redis_connections.async_client(redis_url).connection_pool.max_connections == redis_connections.MAX_CONNECTIONS
    assert redis_connections.async_client(SENTINEL_URL).connection_pool.max_connections == redis_connections.MAX_CONNECTIONS
    from channels_redis.utils import create_pool

    for url in (redis_url, SENTINEL_URL):
        assert create_pool(redis_connections.channel_layer_host(url)).max_connections == redis_connections.MAX_CONNECTIONS
    # limits' own client of a plain URL (redis-py's default pool would be 100).
    limits_client = redis_connections.limits_storage(redis_url, key_prefix="t").bridge.storage
    assert limits_client.connection_pool.max_connections == redis_connections.MAX_CONNECTIONS


@pytest.mark.asyncio
async def test_a_burst_of_concurrent_group_adds_all_succeed(redis_url):
    """300 handshakes' group_add at once on one worker's layer: redis-py 8's default pool (100) raised
    MaxConnectionsError for the excess, and those sockets closed with 1013 (scripts/bench, uvicorn)."""
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=redis_connections.channel_layer_hosts([redis_url]), prefix="burst-test")
    try:
        channels = [await layer.new_channel() for _ in range(300)]
        await asyncio.gather(*(layer.group_add(f"room-{i % 10}", channel) for i, channel in enumerate(channels)))
        await layer.group_send("room-0", {"type": "chat.ping"})
        room_0 = channels[::10]
        received = await asyncio.wait_for(asyncio.gather(*(layer.receive(c) for c in room_0)), timeout=10)
        assert [m["type"] for m in received] == ["chat.ping"] * 30
    finally:
        await layer.flush()
        await layer.close_pools()
