"""A bounded chat load with reconnecting clients, for the fault tests (and benchmarks).

:class:`LoadClient` behaves like the room page's JavaScript: on a lost socket
it waits (exponential backoff with full jitter, from the ``backoff`` library),
reconnects through nginx with ``?after=<offset>&epoch=<epoch>``, and drops
what it has already seen by offset. :func:`run_load` runs N such clients in one
room while a sender sends at a fixed rate, calls a fault in the middle, and
returns :class:`Figures`: sent, stored, received, lost, duplicates dropped,
reconnects and the longest reconnect.
"""

import asyncio
import collections
import json
import contextlib
import itertools
import random
import time
from dataclasses import dataclass, field

import backoff
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.clients import ws_url

# Reconnect delays in seconds: full jitter over 0.1 x 2^n, capped at 2 s.
BACKOFF_FACTOR = 0.1
BACKOFF_CAP = 2.0


def reconnect_delays():
    """Yield reconnect delays (seconds): exponential, capped, with full jitter."""
    delays = backoff.expo(base=2, factor=BACKOFF_FACTOR, max_value=BACKOFF_CAP)
    next(delays)  # backoff's wait generators first yield None (their .send() protocol)
    for delay in delays:
        yield backoff.full_jitter(delay)


@dataclass
class Figures:
    """What one load run measured. Times in seconds.

    ``lost`` counts (client, message) pairs: a stored message some client
    never received. ``unacknowledged`` counts sends that never became a
    stored message (a frame in flight to a process that died).
    """

    clients: int = 0
    idle: int = 0
    workers: int = 0
    sent: int = 0
    stored: int = 0
    received: int = 0
    lost: int = 0
    duplicates_dropped: int = 0
    unacknowledged: int = 0
    reconnects: int = 0
    max_reconnect: float = 0.0
    close_codes: dict = field(default_factory=dict)

    def line(self, name):
        """One line for people: ``name: sent=… lost=… …``."""
        codes = ",".join(f"{code}x{count}" for code, count in sorted(self.close_codes.items())) or "-"
        return (
            f"{name}: clients={self.clients} idle={self.idle} worker_processes={self.workers} sent={self.sent} stored={self.stored} "
            f"received={self.received} lost={self.lost} duplicates_dropped={self.duplicates_dropped} "
            f"unacknowledged={self.unacknowledged} reconnects={self.reconnects} "
            f"max_reconnect={self.max_reconnect:.2f}s close_codes={codes}"
        )


class LoadClient:
    """One user's socket to ``room`` that reconnects and recovers on its own.

    ``cookie`` is the ``Cookie`` header of a signed-in session; ``origin``
    the page's origin (the base URL). ``ssl`` is an ``ssl.SSLContext`` for
    ``wss://`` URLs (None: the default context).
    """

    def __init__(self, base_url, cookie, room, name, ssl=None):
        self.base_url, self.cookie, self.room, self.name, self.ssl = base_url, cookie, room, name, ssl
        self.epoch = None
        self.offset = 0
        self.offsets = []  # every offset received, in arrival order
        self.duplicates = 0
        self.close_codes = collections.Counter()
        self.reconnect_times = []
        self.workers = set()
        self.users = None  # the last presence frame's users
        self.connection = None
        self.connected = asyncio.Event()
        # (arrival, body) of every message frame after the welcome, time.monotonic() seconds
        self.arrivals = []
        self.sent_at = {}  # body -> time.monotonic() it was handed to the socket

    def _accept(self, message):
        if message["offset"] <= self.offset:
            self.duplicates += 1
            return
        self.offset = message["offset"]
        self.offsets.append(message["offset"])

    async def run(self, stop):
        """Keep a socket open (reconnecting) until ``stop`` (an asyncio.Event) is set."""
        delays = reconnect_delays()
        lost_at = None
        while not stop.is_set():
            after = None if self.epoch is None else self.offset
            try:
                async with connect(
                    ws_url(self.base_url, self.room, after, self.epoch),
                    origin=self.base_url,
                    additional_headers={"Cookie": self.cookie},
                    open_timeout=5,
                    **({"ssl": self.ssl} if self.ssl is not None else {}),
                ) as connection:
                    async for raw in connection:
                        frame = json.loads(raw)
                        if frame["type"] == "welcome":
                            if self.epoch is not None and not frame["recovered"]:
                                raise AssertionError(f"{self.name}: recovery failed: {frame}")
                            self.epoch = frame["epoch"]
                            self.workers.add(frame["worker"])
                            for message in frame["history"]:
                                self._accept(message)
                            if lost_at is not None:
                                self.reconnect_times.append(time.monotonic() - lost_at)
                                lost_at = None
                            delays = reconnect_delays()
                            self.connection = connection
                            self.connected.set()
                        elif frame["type"] == "message":
                            self.arrivals.append((time.monotonic(), frame["body"]))
                            self._accept(frame)
                        elif frame["type"] == "presence":
                            self.users = frame["users"]
                        if stop.is_set():
                            break
                    code = connection.close_code
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
            except (InvalidStatus, OSError, TimeoutError):
                code = None  # the handshake failed: nginx had no live worker yet
            self.connection = None
            self.connected.clear()
            if stop.is_set():
                return
            if code is not None:
                self.close_codes[code] += 1
            if lost_at is None:
                lost_at = time.monotonic()
            await asyncio.sleep(0 if code == 1012 else next(delays))

    async def send(self, body):
        """Send a chat message if connected; return True when the frame was handed to the socket."""
        connection = self.connection
        if connection is None:
            return False
        try:
            await connection.send(json.dumps({"type": "message", "body": body}))
        except ConnectionClosed:
            return False
        self.sent_at[body] = time.monotonic()
        return True


async def run_load(base_url, cookies, room, clients=20, rate=20.0, duration=10.0, fault=None, fault_at=3.0,
                   settle=20.0, fetch_stored=None, ssl=None, send_until_fault_done=False, idle=0, clients_out=None,
                   post=None):
    """Run ``clients`` reconnecting clients in ``room`` for ``duration`` seconds; return :class:`Figures`.

    ``cookies``: list of ``Cookie`` header values, used round-robin.
    ``rate``: messages per second sent in all, each by a random connected
    client. ``fault``: an async callable run ``fault_at`` seconds in (it may
    take a while; sending goes on). After sending stops, waits up to
    ``settle`` seconds for every client to reach the room's last offset.
    ``fetch_stored``: async callable returning the room's stored messages
    (the ground truth), e.g. through the API. ``ssl``: see :class:`LoadClient`.
    ``send_until_fault_done``: keep sending past ``duration`` until the fault
    has finished (a deploy whose length is not known in advance).
    ``idle``: further clients in the room that never send (they only read).
    ``clients_out``: a list the :class:`LoadClient` objects are appended to,
    for figures of a test's own (e.g. ``arrivals``).
    ``post``: an async callable ``(body) -> bool`` (True: the message was
    stored) that sends instead of the sockets, e.g. through the HTTP API; with
    it ``clients`` may be 0, so every socket only reads.
    """
    stop = asyncio.Event()
    load_clients = [LoadClient(base_url, cookies[i % len(cookies)], room, f"client-{i}", ssl)
                    for i in range(clients + idle)]
    posting = load_clients[:clients]
    if clients_out is not None:
        clients_out.extend(load_clients)
    tasks = []
    for client in load_clients:  # one at a time, so least_conn spreads them evenly
        tasks.append(asyncio.create_task(client.run(stop)))
        await asyncio.wait_for(client.connected.wait(), 10)
    sent_bodies = []
    counter = itertools.count()

    async def sender():
        started = time.monotonic()
        while time.monotonic() - started < duration or (
                send_until_fault_done and fault_task is not None and not fault_task.done()):
            body = f"load-{next(counter)}"
            if await (post(body) if post is not None else random.choice(posting).send(body)):
                sent_bodies.append(body)
            await asyncio.sleep(1 / rate)

    fault_task = None

    async def run_fault():
        await asyncio.sleep(fault_at)
        await fault()

    if fault is not None:
        fault_task = asyncio.create_task(run_fault())
    await sender()
    if fault_task is not None:
        await fault_task
    stored = await fetch_stored()
    last = stored[-1]["offset"] if stored else 0
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and any(c.offset < last or not c.connected.is_set() for c in load_clients):
        await asyncio.sleep(0.1)
    stop.set()
    for client in load_clients:
        if client.connection is not None:
            with contextlib.suppress(Exception):
                await client.connection.close()
    await asyncio.wait(tasks, timeout=10)
    for task in tasks:
        task.cancel()
    failed = [task.exception() for task in tasks if task.done() and not task.cancelled() and task.exception()]
    if failed:
        raise failed[0]

    stored_offsets = [m["offset"] for m in stored]
    stored_bodies = {m["body"] for m in stored}
    codes = collections.Counter()
    for client in load_clients:
        codes.update(client.close_codes)
    reconnect_times = [t for c in load_clients for t in c.reconnect_times]
    return Figures(
        clients=clients,
        idle=idle,
        workers=len(set().union(*(c.workers for c in load_clients))),
        sent=len(sent_bodies),
        stored=len(stored),
        received=sum(len(c.offsets) for c in load_clients),
        lost=sum(len(set(stored_offsets) - set(c.offsets)) for c in load_clients),
        duplicates_dropped=sum(c.duplicates for c in load_clients),
        unacknowledged=len(set(sent_bodies) - stored_bodies),
        reconnects=len(reconnect_times),
        max_reconnect=max(reconnect_times, default=0.0),
        close_codes=dict(codes),
    )
