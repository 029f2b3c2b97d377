"""compose.prod.yaml with compose.redis-ha.yaml on a real Docker engine: the Redis primary killed under chat load.

20 posting clients and 10 idle ones chat through nginx (TLS) over two ASGI
replicas while the primary's container is killed (``docker kill -s KILL``:
Docker does not restart a container it was told to kill); the sentinels
promote the replica, the app follows it without a restart, every client gets
every stored message. Then the old primary is started again and must rejoin
as a replica. Figures in docs/reliability.md, "Redis HA".
"""

import asyncio
import ssl
import subprocess
import time
import uuid

import pytest

from tests.chatload import run_load
from tests.clients import ChatClient
from tests.compose.conftest import prod_stack, require_docker, running
from tests.conftest import PASSWORDS
from tests.stack.test_faults import wait_until
from tests.stack.test_redis_ha import check_failover, first_delivery_after

pytestmark = [pytest.mark.compose, pytest.mark.asyncio]

CLIENTS, IDLE, RATE = 20, 10, 20.0
MASTER = "switchyard"  # defaults.env's REDIS_SENTINEL_MASTER (tests/compose/test_files.py checks it)
NET = "172.29.64"  # compose.redis-ha.yaml's default REDIS_HA_NET
ADDRESSES = {f"{NET}.10": "redis", f"{NET}.11": "redis-replica"}
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


@pytest.fixture(scope="module")
def compose_ha(tmp_path_factory):
    """compose.prod.yaml + compose.redis-ha.yaml (the chat example), two ASGI replicas."""
    require_docker()
    yield from running(prod_stack(tmp_path_factory.mktemp("compose-ha"), "redis-ha",
                                  overrides=["compose.redis-ha.yaml"]))


@pytest.fixture(autouse=True)
def trust_the_test_certificate(compose_ha, monkeypatch):
    """Every ``requests`` call (the clients' history reads too) verifies against the self-signed pair."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", compose_ha.verify)


def redis_cli(stack, service, *args, port=6379):
    """Run ``redis-cli ARGS`` in ``service``'s container (its password from REDISCLI_AUTH); return stdout lines."""
    result = stack.compose("exec", "-T", service, "redis-cli", "-p", str(port), *args, check=False, timeout=30)
    return result.stdout.split()


def primary_seen(stack):
    """``{sentinel: service of the primary}`` as each running sentinel reports it."""
    seen = {}
    for sentinel in SENTINELS:
        answer = redis_cli(stack, sentinel, "sentinel", "get-master-addr-by-name", MASTER, port=26379)
        if answer:
            seen[sentinel] = ADDRESSES.get(answer[0], answer[0])
    return seen


def sentinels_ready(stack):
    """True when every sentinel knows the replica and the two other sentinels (a failover can run)."""
    for sentinel in SENTINELS:
        words = redis_cli(stack, sentinel, "sentinel", "master", MASTER, port=26379)
        fields = dict(zip(words[::2], words[1::2]))
        if fields.get("num-slaves") != "1" or fields.get("num-other-sentinels") != "2":
            return False
    return True


def role(stack, service):
    """``ROLE`` in ``service``: ``["master"]``, ``["slave", primary's service]``, or [] when it is down."""
    words = redis_cli(stack, service, "role")
    return words[:1] if words[:1] == ["master"] else [*words[:1], *(ADDRESSES.get(w, w) for w in words[1:2])]


def tls(stack):
    return ssl.create_default_context(cafile=stack.verify)


def signed_in(stack, name):
    return ChatClient(stack.base_url, name, PASSWORDS[name], verify=stack.verify).login()


def load(stack, room, **kwargs):
    cookies = [signed_in(stack, name).cookie_header() for name in ("alice", "bob", "carol")]
    reader = signed_in(stack, "alice")
    return run_load(stack.base_url, cookies, room, CLIENTS, RATE, ssl=tls(stack), idle=IDLE,
                    fetch_stored=lambda: asyncio.to_thread(reader.messages_after, room), **kwargs)


async def test_the_layout_is_a_primary_a_replica_and_three_sentinels(compose_ha):
    await wait_until(lambda: role(compose_ha, "redis-replica") == ["slave", "redis"], 60, "the replica linked")
    await wait_until(lambda: sentinels_ready(compose_ha), 60, "every sentinel knowing the replica and the others")
    assert set(primary_seen(compose_ha).values()) == {"redis"}
    assert role(compose_ha, "redis")[0] == "master"


async def test_kill_the_primary_then_it_rejoins_as_a_replica(compose_ha, report):
    await wait_until(lambda: set(primary_seen(compose_ha).values()) == {"redis"} and sentinels_ready(compose_ha)
                   and role(compose_ha, "redis-replica") == ["slave", "redis"], 60, "a healthy pair")
    (primary,) = compose_ha.container_ids("redis")
    room = f"failover-{uuid.uuid4().hex[:8]}"
    timing, clients = {}, []

    async def kill_primary():
        await asyncio.to_thread(subprocess.run, ["docker", "kill", "-s", "KILL", primary], check=True,
                                capture_output=True)
        timing["killed"] = time.monotonic()  # after: messages sent while docker ran may still have gone through
        await wait_until(lambda: set(primary_seen(compose_ha).values()) == {"redis-replica"}, 30, "the replica promoted")
        timing["promoted"] = time.monotonic() - timing["killed"]

    figures = await load(compose_ha, room, duration=14, fault=kill_primary, clients_out=clients)
    first = first_delivery_after(clients, timing["killed"])
    report(figures.line("compose HA: docker kill -s KILL the Redis primary")
           + f" promoted_after={timing['promoted']:.2f}s first_delivery_after="
           + (f"{first:.2f}s" if first is not None else "none"))
    check_failover(figures, timing, first)
    assert compose_ha.state(primary)[0] == "exited"  # nobody restarted it behind the sentinels' back

    room = f"rejoin-{uuid.uuid4().hex[:8]}"

    async def bring_back():
        await asyncio.to_thread(subprocess.run, ["docker", "start", primary], check=True, capture_output=True)
        await wait_until(lambda: role(compose_ha, "redis") == ["slave", "redis-replica"], 60,
                       "the old primary a replica of the new one")

    figures = await load(compose_ha, room, duration=10, fault=bring_back)
    report(figures.line("compose HA: the old Redis primary started again"))
    assert figures.lost == 0
    assert 1013 not in figures.close_codes  # the primary did not move: no socket lost Redis
    assert set(primary_seen(compose_ha).values()) == {"redis-replica"}  # no split brain
    assert role(compose_ha, "redis-replica")[0] == "master"
