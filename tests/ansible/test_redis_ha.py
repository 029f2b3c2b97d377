"""The Molecule ``ha`` scenario: the Redis primary's ``redis-server`` stopped (systemd) under chat load, through the load balancer.

Run by ansible/molecule/ha/verify.yml. 20 posting and 10 idle clients chat
through ha-lb1's nginx over TLS with the 2 ASGI workers of ha-app1, whose
REDIS_URL names the three sentinels. The primary's unit is stopped: the
sentinels promote the replica, the app follows it without a restart, every
client gets every stored message. Started again, the old primary must come
back as a replica of the new one. Figures in docs/reliability.md, "Redis HA".
"""

import asyncio
import json
import os
import ssl
import time
import uuid

import pytest

from switchyard.defaults import load
from tests.chatload import run_load
from tests.stack.test_faults import wait_until
from tests.stack.test_redis_ha import FAILOVER_BOUND, check_failover, first_delivery_after

pytestmark = [pytest.mark.ansible, pytest.mark.asyncio]

FACTS = load()
CLIENTS, IDLE, RATE = 20, 10, 20.0


@pytest.fixture(scope="module")
def layout(site):
    """``{"redis": {host: address}, "sentinels": [host, ...]}`` of the scenario (addresses asked of the hosts)."""
    redis_hosts = os.environ["SWITCHYARD_REDIS_HOSTS"].split(",")
    addresses = {}
    for host in redis_hosts:
        result = site.command(host, "hostname", "-I")
        assert result.returncode == 0, result.stderr
        addresses[host] = result.stdout.split()[0]
    return {"redis": addresses, "sentinels": os.environ["SWITCHYARD_SENTINEL_HOSTS"].split(",")}


def _redis_cli_script(sentinel, *args):
    config = "/etc/redis/sentinel.conf" if sentinel else "/etc/redis/redis.conf"
    port = FACTS["REDIS_SENTINEL_PORT"] if sentinel else "6379"
    return (f"REDISCLI_AUTH=\"$(sed -n 's/^requirepass //p' {config} | tr -d '\\\"')\" "
            f"exec redis-cli -p {port} " + " ".join(args))


def redis_cli(site, host, *args, sentinel=False):
    """Run ``redis-cli ARGS`` on ``host`` as root (password read from the host's own config); return its words."""
    result = site.command(host, "sh", "-c", _redis_cli_script(sentinel, *args))
    return result.stdout.split() if result.returncode == 0 else []


def on_hosts(site, hosts, argv):
    """Run ``argv`` on every host of ``hosts`` (list) in one Ansible call; return ``{host: stdout}`` of those that ran it."""
    run = site.ansible("ansible", ",".join(hosts), "-m", "ansible.builtin.command", "-a", json.dumps({"argv": argv}),
                       env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    try:
        results = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, LookupError):
        return {}
    return {host: result.get("stdout", "") for host, result in results.items() if result.get("rc") == 0}


def primary_seen(site, layout):
    """``{sentinel host: redis host it names as the primary}`` for every sentinel that answers (one Ansible call)."""
    by_address = {address: host for host, address in layout["redis"].items()}
    script = _redis_cli_script(True, "sentinel", "get-master-addr-by-name", FACTS["REDIS_SENTINEL_MASTER"])
    answers = on_hosts(site, layout["sentinels"], ["sh", "-c", script])
    return {host: by_address.get(out.split()[0], out.split()[0]) for host, out in answers.items() if out.split()}


def role(site, layout, host):
    """``["master"]`` or ``["slave", primary's host]`` of the redis host, [] when it does not answer."""
    words = redis_cli(site, host, "role")
    if words[:1] == ["master"]:
        return ["master"]
    by_address = {address: name for name, address in layout["redis"].items()}
    return [*words[:1], *(by_address.get(w, w) for w in words[1:2])]


def load(site, login, room, **kwargs):
    cookies = [login(name).cookie_header() for name in ("alice", "bob", "carol")]
    reader = login("alice")
    return run_load(site.base_url, cookies, room, CLIENTS, RATE, ssl=ssl.create_default_context(cafile=site.verify),
                    idle=IDLE, fetch_stored=lambda: asyncio.to_thread(reader.messages_after, room), **kwargs)


async def test_stop_the_primary_under_load_then_it_rejoins_as_a_replica(site, layout, login, report):
    first, second = list(layout["redis"])
    await wait_until(lambda: set(primary_seen(site, layout).values()) == {first}
                   and role(site, layout, second) == ["slave", first], 60, "the first redis host primary, the other its replica")
    room = f"failover-{uuid.uuid4().hex[:8]}"
    timing, clients = {}, []

    async def stop_primary():
        result = await asyncio.to_thread(site.command, first, "systemctl", "stop", "redis-server")
        assert result.returncode == 0, result.stderr
        timing["stopped"] = time.monotonic()  # after: messages sent while Ansible ran may still have gone through
        await wait_until(lambda: set(primary_seen(site, layout).values()) == {second}, 30, "the replica promoted")
        timing["promoted"] = time.monotonic() - timing["stopped"]

    figures = await load(site, login, room, duration=14, fault=stop_primary, clients_out=clients)
    first_delivery = first_delivery_after(clients, timing["stopped"])
    report(figures.line("Ansible HA: systemctl stop redis-server on the primary")
           + f" promoted_after={timing['promoted']:.2f}s first_delivery_after="
           + (f"{first_delivery:.2f}s" if first_delivery is not None else "none"))
    # The sentinels are asked through Ansible here, ~2-3 s a round: promotion is seen late.
    check_failover(figures, timing, first_delivery, promoted_bound=FAILOVER_BOUND + 5)

    room = f"rejoin-{uuid.uuid4().hex[:8]}"

    async def start_old_primary():
        result = await asyncio.to_thread(site.command, first, "systemctl", "start", "redis-server")
        assert result.returncode == 0, result.stderr
        await wait_until(lambda: role(site, layout, first) == ["slave", second], 60,
                       "the old primary a replica of the new one")

    figures = await load(site, login, room, duration=10, fault=start_old_primary)
    report(figures.line("Ansible HA: the old primary's redis-server started again"))
    assert figures.lost == 0
    assert 1013 not in figures.close_codes  # the primary did not move again
    assert set(primary_seen(site, layout).values()) == {second}  # no split brain
    assert role(site, layout, second) == ["master"]
