"""Fault tests with figures: 20 reconnecting clients chat at ~20 msg/s across two
ASGI workers while a worker is killed, workers restart in turn, Redis restarts
and nginx reloads. Each prints sent / received / lost / duplicates dropped /
max reconnect time (terminal summary and var/test-output/reliability.txt).
See docs/reliability.md."""

import asyncio
import collections
import os
import signal
import time
import uuid

import pytest
import requests

from deploy.native import port_accepts
from tests.chatload import LoadClient, run_load
from tests.conftest import PRESENCE_HEARTBEAT, PRESENCE_TTL

pytestmark = pytest.mark.asyncio

CLIENTS, RATE = 20, 20.0
# Messages stored while the channel layer had lost Redis (chat.metrics).
DELAYED = "switchyard_chat_broadcasts_delayed_total"


def cookies(login):
    return [login(name).cookie_header() for name in ("alice", "bob", "carol")]


def fetcher(login, room):
    reader = login("alice")
    return lambda: asyncio.to_thread(reader.messages_after, room)


async def ctl(stack, *args):
    result = await asyncio.to_thread(stack.ctl, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def worker_pids(stack):
    return {port: int(await ctl(stack, "pid", f"asgi:asgi-{port}")) for port in stack.config.asgi_ports}


async def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_kill_9_a_worker_under_load(stack, login, report):
    room = f"kill-{uuid.uuid4().hex[:8]}"
    victim = (await worker_pids(stack))[stack.config.asgi_ports[0]]

    async def kill():
        os.kill(victim, signal.SIGKILL)

    figures = await run_load(stack.config.url, cookies(login), room, CLIENTS, RATE, duration=10, fault=kill,
                             fetch_stored=fetcher(login, room))
    report(figures.line("kill -9 one of 2 workers"))
    assert figures.workers == 2
    assert figures.reconnects >= 1 and figures.close_codes.get(1006, 0) >= 1
    assert figures.stored > 100
    assert figures.lost == 0
    assert figures.max_reconnect < 5.0


async def test_rolling_restart_drains_with_1012(stack, login, report):
    room = f"rolling-{uuid.uuid4().hex[:8]}"

    async def rolling_restart():
        for port in stack.config.asgi_ports:
            await ctl(stack, "restart", f"asgi:asgi-{port}")  # SIGTERM, drain, exit, start
            await wait_until(lambda p=port: port_accepts(p), 20, f"worker {port} back")
            await asyncio.sleep(1)

    figures = await run_load(stack.config.url, cookies(login), room, CLIENTS, RATE, duration=12, fault=rolling_restart,
                             fault_at=2, fetch_stored=fetcher(login, room))
    report(figures.line("SIGTERM each worker in turn"))
    assert figures.close_codes.get(1012, 0) >= CLIENTS  # every client was drained at least once
    assert set(figures.close_codes) == {1012}
    assert figures.lost == 0
    # A frame the client sends while the server's 1012 is already on its way can
    # go unread (reported as unacknowledged; a client outbox is the known next step).
    assert figures.unacknowledged <= 1
    assert figures.max_reconnect < 10.0  # 0.2-4 s measured; the 5 s target is kill -9's


async def test_redis_restart_under_load(stack, login, report):
    room = f"redis-{uuid.uuid4().hex[:8]}"
    poster = login("bob")
    during = {}

    async def restart_redis():
        await ctl(stack, "stop", "redis")
        await wait_until(lambda: _health(stack) == 503, 10, "/healthz 503 without Redis")
        response = await asyncio.to_thread(poster.post_message, room, "posted while Redis is down")
        during["status"], during["body"] = response.status_code, response.json()
        await asyncio.sleep(2)
        await ctl(stack, "start", "redis")
        await wait_until(lambda: _health(stack) == 200, 20, "/healthz 200 with Redis back")

    delayed_before, gap_before = _workers_total(stack, DELAYED), _gap_deliveries(stack)
    figures = await run_load(stack.config.url, cookies(login), room, CLIENTS, RATE, duration=12, fault=restart_redis,
                             fetch_stored=fetcher(login, room))
    delayed, gap_filled = _workers_total(stack, DELAYED) - delayed_before, _gap_deliveries(stack) - gap_before
    report(figures.line("stop Redis 2 s, start it again")
           + f", {delayed:.0f} socket messages stored without a live push, {gap_filled:.0f} frames sent from the database")
    assert during["status"] == 201 and during["body"]["delivery"] == "delayed"
    assert delayed >= 1  # messages sent over the sockets while Redis was away were stored all the same
    assert figures.lost == 0  # every stored message reached every client, the delayed ones too
    # The sockets stayed open (their consumers caught up from the database once
    # their worker had Redis again), so no frame went down with a socket.
    assert not figures.close_codes and figures.unacknowledged == 0, figures.close_codes
    assert gap_filled >= delayed


async def test_idle_sockets_get_every_message_posted_over_the_api_during_a_redis_outage(stack, login, report):
    """Sockets that never post, messages posted only over the API, Redis stopped for 3 s meanwhile.

    An idle socket has nothing of its own in flight, so only its worker can
    tell it that messages went by while Redis was away. On the default fan-out
    layer (``switchyard.fanout``) the worker subscribes again and signals its
    consumers (``channel_layer.reconnected``), which send what the socket
    missed from the database by offset, and the socket stays open. A layer
    that swallowed the outage would leave these sockets silently missing
    what was posted during it (channels_redis' pub/sub layer did).
    """
    room = f"idle-outage-{uuid.uuid4().hex[:8]}"
    poster = login("bob")
    statuses = collections.Counter()

    async def post(body):
        response = await asyncio.to_thread(poster.post_message, room, body)
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        statuses[response.status_code, response.json().get("delivery") if is_json else None] += 1
        return response.status_code == 201

    async def outage():
        await ctl(stack, "stop", "redis")
        await wait_until(lambda: _health(stack) == 503, 10, "/healthz 503 without Redis")
        await asyncio.sleep(3)
        await ctl(stack, "start", "redis")
        await wait_until(lambda: _health(stack) == 200, 20, "/healthz 200 with Redis back")

    gap_before = _gap_deliveries(stack)
    figures = await run_load(stack.config.url, cookies(login), room, clients=0, idle=CLIENTS, rate=10, duration=12,
                             fault=outage, fetch_stored=fetcher(login, room), post=post)
    gap_filled = _gap_deliveries(stack) - gap_before
    report(figures.line("idle sockets, API posts, Redis stopped 3 s") + f", {gap_filled:.0f} sent from the database")
    assert figures.workers == 2 and figures.idle == CLIENTS
    assert statuses[201, "delayed"] >= 1, statuses  # some posts landed while Redis was down
    assert figures.stored == figures.sent > 50 and figures.unacknowledged == 0, statuses
    assert figures.lost == 0  # every socket ends with every offset
    assert figures.received == CLIENTS * figures.stored
    # The idle sockets stayed open: their consumers filled the gap from the database once Redis was back.
    assert figures.reconnects == 0 and not figures.close_codes, figures.close_codes
    assert gap_filled >= CLIENTS * statuses[201, "delayed"], (gap_filled, statuses)


async def test_nginx_reload_under_load(stack, login, report):
    room = f"reload-{uuid.uuid4().hex[:8]}"

    async def reload_nginx():
        await ctl(stack, "signal", "HUP", "nginx")

    figures = await run_load(stack.config.url, cookies(login), room, CLIENTS, RATE, duration=8, fault=reload_nginx,
                             fetch_stored=fetcher(login, room))
    report(figures.line("nginx reload (HUP)"))
    assert figures.lost == 0
    assert figures.unacknowledged == 0
    assert figures.reconnects == 0  # old nginx workers keep open sockets until they close


async def test_presence_of_a_killed_workers_users_expires_within_the_bound(stack, login, report):
    room = f"presence-{uuid.uuid4().hex[:8]}"
    observer = LoadClient(stack.config.url, login("bob").cookie_header(), room, "observer")
    stop = asyncio.Event()
    observer_task = asyncio.create_task(observer.run(stop))
    await asyncio.wait_for(observer.connected.wait(), 10)
    observer_worker = next(iter(observer.workers))
    # Carol's socket, on the other worker; it will not reconnect.
    from websockets.asyncio.client import connect

    from tests.clients import ws_url

    carol = login("carol")
    for _ in range(6):
        socket = await connect(ws_url(stack.config.url, room), origin=stack.config.url,
                               additional_headers={"Cookie": carol.cookie_header()})
        welcome = _welcome(await socket.recv())
        if welcome["worker"] != observer_worker:
            break
        await socket.close()  # on the observer's worker: carol must be present only on the other one
    assert welcome["worker"] != observer_worker
    presence = await _presence_until(observer, lambda users: "carol" in users, 10)
    assert presence == ["bob", "carol"]
    os.kill(int(welcome["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    killed = time.monotonic()
    await _presence_until(observer, lambda users: "carol" not in users, PRESENCE_TTL + PRESENCE_HEARTBEAT + 5)
    took = time.monotonic() - killed
    bound = PRESENCE_TTL + PRESENCE_HEARTBEAT
    report(f"presence: killed worker's user left after {took:.1f}s (bound {bound}s = TTL {PRESENCE_TTL} + heartbeat {PRESENCE_HEARTBEAT})")
    stop.set()
    await observer.connection.close()
    observer_task.cancel()
    assert took <= bound + 1.0  # one second of scheduling slack


def _workers_total(stack, name, **labels):
    """The sum of metric ``name`` (with ``labels``) over the ASGI workers' metrics endpoints."""
    from tests.metrics import scrape_all, total

    urls = [f"http://127.0.0.1:{port}/metrics" for worker, port in stack.config.metrics_ports().items()
            if worker.startswith("asgi-")]
    return total(scrape_all(urls), name, **labels)


def _gap_deliveries(stack):
    """Messages the workers sent from the database to fill gaps so far."""
    return _workers_total(stack, "switchyard_chat_messages_delivered_total", path="gap")


def _health(stack):
    try:
        return requests.get(f"{stack.config.url}/healthz", timeout=5).status_code
    except requests.RequestException:
        return None


def _welcome(raw):
    import json

    frame = json.loads(raw)
    assert frame["type"] == "welcome"
    return frame


async def _presence_until(client, predicate, timeout):
    """Wait until a presence frame pushed to ``client`` satisfies ``predicate(users)``; return the users."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.users is not None and predicate(client.users):
            return client.users
        await asyncio.sleep(0.05)
    raise AssertionError(f"presence never matched; last: {client.users}")
