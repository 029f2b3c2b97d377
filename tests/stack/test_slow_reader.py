"""Slow readers (issue #16): sockets that stop reading while their room is busy are closed with 4408 instead of
making their worker buffer without bound; everyone else keeps their latency.

With the default limits (WEBSOCKET_SLOW_READER_SECONDS 10, WEBSOCKET_SLOW_READER_BYTES 1 MiB), through nginx,
on daphne and uvicorn workers. Figures in the terminal summary and var/test-output/reliability.txt.
"""

import asyncio
import json
import statistics
import time
import uuid

import psutil
import pytest
from websockets.asyncio.client import connect

from tests.clients import RawSocket, ws_url
from tests.metrics import scrape_all, total

pytestmark = pytest.mark.asyncio

SLOW_SOCKETS = 8
SENDERS = ("alice", "bob", "carol", "fuzzer")
RATE_PER_SENDER = 9.0  # messages/s: under CHAT_RATE_LIMIT_PER_CONNECTION (10/s)
BODY = "😀" * 1990  # the largest legal body in the widest characters: ~8 KB per frame
BASELINE_SECONDS, BUSY_SECONDS = 5.0, 60.0


def p99(values):
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values, default=0.0)


async def sender(url, cookie, origin, stop, sent):
    async with connect(url, origin=origin, additional_headers={"Cookie": cookie}, max_size=None) as socket:
        await socket.recv()  # welcome

        async def drain():  # a sender reads what the room sends too, or it would be a slow reader itself
            async for _ in socket:
                pass

        reading = asyncio.create_task(drain())
        next_at = time.monotonic()
        while not stop.is_set():
            body = f"{time.time():.6f}|" + BODY[:-8]
            await socket.send(json.dumps({"type": "message", "body": body}))
            sent.append(body)
            next_at += 1 / RATE_PER_SENDER
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        reading.cancel()


async def bystander(url, cookie, origin, stop, latencies):
    """A client that reads everything: the latency (s) of each message from its send time."""
    async with connect(url, origin=origin, additional_headers={"Cookie": cookie}, max_size=None) as socket:
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 1.0))
            except asyncio.TimeoutError:
                continue
            if frame["type"] == "message" and "|" in frame["body"]:
                latencies.append(time.time() - float(frame["body"].split("|", 1)[0]))


async def phase(stack, login, room, seconds, latencies, sent):
    base, origin = stack.config.url, stack.config.url
    url = ws_url(base, room)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(sender(url, login(name).cookie_header(), origin, stop, sent)) for name in SENDERS]
    tasks.append(asyncio.create_task(bystander(url, login("mallory").cookie_header(), origin, stop, latencies)))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)


def worker_rss(stack):
    return {port: psutil.Process(int(stack.ctl("pid", f"asgi:asgi-{port}").stdout)).memory_info().rss
            for port in stack.config.asgi_ports}


async def test_slow_readers_are_closed_with_4408_and_nobody_else_waits(stack, login, report):
    room = f"slow-{uuid.uuid4().hex[:8]}"
    metrics_urls = [f"http://127.0.0.1:{port}/metrics" for name, port in stack.config.metrics_ports().items()
                    if name.startswith("asgi-")]
    closes_before = total(scrape_all(metrics_urls), "switchyard_websocket_slow_reader_closes_total")
    logs = sorted(stack.log_dir.glob("asgi-*.log"))
    log_sizes = {log: log.stat().st_size for log in logs}

    baseline_latencies, busy_latencies, sent = [], [], []
    await phase(stack, login, room, BASELINE_SECONDS, baseline_latencies, sent)
    rss_before = worker_rss(stack)

    # Sockets that take their welcome and then never read again.
    trudy = login("trudy").cookie_header()
    slow = [await asyncio.to_thread(RawSocket, stack.config.url, room, trudy) for _ in range(SLOW_SOCKETS)]
    rss_peak = dict(rss_before)

    async def sample_rss(stop):
        while not stop.is_set():
            for port, value in (await asyncio.to_thread(worker_rss, stack)).items():
                rss_peak[port] = max(rss_peak[port], value)
            await asyncio.sleep(1.0)

    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(stop_sampling))
    started = time.monotonic()
    await phase(stack, login, room, BUSY_SECONDS, busy_latencies, sent)
    stop_sampling.set()
    await sampler

    def slow_reader_records():
        found = []
        for log in logs:
            with open(log, errors="replace") as handle:
                handle.seek(log_sizes[log])
                found += [json.loads(line) for line in handle if line.startswith("{") and '"slow_reader"' in line]
        return found

    records = slow_reader_records()

    # The server ended those sockets' consumers too (not half-closed sockets holding presence and the user's
    # socket cap): trudy leaves the room's presence, her clients still never having read a byte.
    def trudy_gone():
        with login("mallory").socket(room) as socket:
            return "trudy" not in socket.recv(frame_type="presence")["users"]

    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(trudy_gone):
        assert time.monotonic() < deadline, "the slow sockets' consumers never ended"
        await asyncio.sleep(1)
    codes = [await asyncio.to_thread(socket.close_code) for socket in slow]  # now read: what did the server send?
    closes = total(scrape_all(metrics_urls), "switchyard_websocket_slow_reader_closes_total") - closes_before
    growth = {port: (rss_peak[port] - rss_before[port]) / 2**20 for port in rss_before}
    report(f"slow readers: {SLOW_SOCKETS} sockets stopped reading while {len(SENDERS)} senders sent "
           f"{len(sent) / (BASELINE_SECONDS + BUSY_SECONDS):.0f} msg/s of ~8 KB for {BUSY_SECONDS:.0f} s: "
           f"closed_4408={closes:.0f} client_saw={sorted(codes)} worker_rss_growth_MiB="
           f"{ {port: round(value, 1) for port, value in growth.items()} } bystander_p99_ms "
           f"baseline={p99(baseline_latencies) * 1000:.0f} busy={p99(busy_latencies) * 1000:.0f} "
           f"(elapsed {time.monotonic() - started:.0f} s)")
    # Every slow socket was ended: by the bound (4408; logged, counted), or, for one whose frames had not yet
    # piled up past it, by the server's keepalive (no pong within ASGI_PING_INTERVAL + ASGI_PING_TIMEOUT:
    # uvicorn's websockets closes with 1011 "keepalive ping timeout", daphne drops it).
    assert closes == len(records) and {record["code"] for record in records} == {4408}, records
    assert closes >= SLOW_SOCKETS // 2, records
    assert len(codes) == SLOW_SOCKETS and set(codes) <= {4408, 1006, 1011}, codes
    if stack.config.asgi_server == "daphne":
        assert 1011 not in codes
    assert max(growth.values()) < 64, growth  # without the bound: ~100 MiB per minute for these sockets
    assert len(busy_latencies) > 1000
    assert p99(busy_latencies) <= max(4 * p99(baseline_latencies), 0.5)
