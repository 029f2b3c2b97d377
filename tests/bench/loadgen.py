"""Load-generator processes for the benchmarks: WebSocket clients (the ``websockets``
library) in separate processes, driven step by step by the orchestrator.

Each :func:`serve` process holds its share of the sockets and answers commands
sent over a ``multiprocessing`` pipe:

- ``("open", cookie, origin, count, concurrency)``: open ``count`` sockets;
  answers ``{"opened", "failed", "seconds", "workers": {worker: n},
  "errors": {reason: n}, "members": {room: n}}``.
- ``("fanout", step, rate, seconds, publish)``: with ``publish``, send
  ``rate`` messages/s spread over this process's rooms for ``seconds`` on a
  fixed schedule (open loop: a send that falls behind is sent at once, its
  latency still counted from its scheduled time, so a stalled server is not
  hidden by a stalled client: no coordinated omission); every process waits
  :data:`GRACE_SECONDS` more, then answers ``{"scheduled", "scheduled_by_room", "send_failed",
  "received", "late", "histogram"}`` for the messages scheduled inside the
  step (``histogram``: an encoded HdrHistogram of latencies in microseconds).
- ``("held",)``: answers ``{"open", "closed"}``: sockets still open and
  sockets the server or the network closed since they were opened.
- ``("close",)``: close everything and exit.

Message bodies carry ``"<step>|<scheduled send time>"``; latency is receive
time minus scheduled send time (same clock: everything runs on this machine).
A frame of a step that arrives after that step was reported is counted in the
next answer's ``stragglers``.
"""

import asyncio
import collections
import json
import os
import random
import time

from hdrh.histogram import HdrHistogram
from websockets.asyncio.client import connect

GRACE_SECONDS = 2.0  # after a step's last scheduled send, before its deliveries are counted
LATE_MS = 1000  # a delivery later than this after its scheduled send is "late" (still delivered)
HISTOGRAM_RANGE_US = (1, 120_000_000, 3)  # 1 µs .. 120 s, 3 significant digits


def new_histogram():
    """An empty latency histogram (µs): HdrHistogram, the same parameters in every process so they merge."""
    return HdrHistogram(*HISTOGRAM_RANGE_US)


class Sockets:
    """The sockets of one load-generator process, grouped by room."""

    def __init__(self):
        self.by_room = collections.defaultdict(list)
        self.received = collections.Counter()
        self.late = collections.Counter()
        self.histograms = collections.defaultdict(new_histogram)
        self.reported = set()
        self.stragglers = 0
        self.closed = 0

    async def open(self, url_of, cookie, origin, rooms, count, concurrency):
        """Open ``count`` sockets, round-robin over ``rooms``, at most ``concurrency`` handshakes at once."""
        gate = asyncio.Semaphore(concurrency)
        workers, errors, members = collections.Counter(), collections.Counter(), collections.Counter()
        failed = 0
        offset = sum(len(sockets) for sockets in self.by_room.values())

        async def one(index):
            nonlocal failed
            room = rooms[(offset + index) % len(rooms)]
            async with gate:
                try:
                    connection = await connect(url_of(room), origin=origin, additional_headers={"Cookie": cookie},
                                               open_timeout=60, max_queue=None, ping_interval=None)
                    welcome = json.loads(await connection.recv())
                except Exception as exc:  # noqa: BLE001 - counted and named, reported as failures
                    failed += 1
                    errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    return
            workers[welcome.get("worker", "?")] += 1
            members[room] += 1
            self.by_room[room].append(connection)
            asyncio.get_running_loop().create_task(self.read(connection))

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        return {"opened": count - failed, "failed": failed, "seconds": time.monotonic() - started,
                "workers": dict(workers), "errors": dict(errors), "members": dict(members)}

    async def read(self, connection):
        try:
            async for raw in connection:
                now = time.time()
                frame = json.loads(raw)
                if frame.get("type") != "message":
                    continue
                step, _, scheduled = frame["body"].partition("|")
                if step in self.reported:
                    self.stragglers += 1
                    continue
                latency_us = max(1, int((now - float(scheduled)) * 1_000_000))
                self.received[step] += 1
                if latency_us > LATE_MS * 1000:
                    self.late[step] += 1
                self.histograms[step].record_value(min(latency_us, HISTOGRAM_RANGE_US[1]))
        except Exception:  # noqa: BLE001 - a closed socket ends its reader
            pass
        self.closed += 1

    async def fanout(self, step, rate, seconds, publish):
        """Publish on a fixed schedule at ``rate`` messages/s (if ``publish``) for ``seconds``; report the step."""
        step = str(step)
        scheduled = send_failed = 0
        by_room = collections.Counter()
        started = time.time()
        if publish and self.by_room:
            publishers = [(room, sockets[0]) for room, sockets in self.by_room.items() if sockets]
            total = max(1, round(rate * seconds))
            for index in range(total):
                at = started + index / rate
                delay = at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                scheduled += 1
                room, publisher = random.choice(publishers)
                by_room[room] += 1
                try:
                    await publisher.send(
                        json.dumps({"type": "message", "body": f"{step}|{at:.6f}"}))
                except Exception:  # noqa: BLE001 - a failed send is a lost message
                    send_failed += 1
        remaining = started + seconds + GRACE_SECONDS - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        self.reported.add(step)
        histogram = self.histograms.pop(step, None) or new_histogram()
        stragglers, self.stragglers = self.stragglers, 0
        return {"scheduled": scheduled, "scheduled_by_room": dict(by_room), "send_failed": send_failed, "received": self.received.pop(step, 0),
                "late": self.late.pop(step, 0), "histogram": histogram.encode(), "stragglers": stragglers}

    def held(self):
        """Sockets open now and sockets closed by the other side (or the network) since they were opened."""
        open_now = sum(1 for sockets in self.by_room.values() for c in sockets if c.state.name == "OPEN")
        return {"open": open_now, "closed": self.closed}

    async def close(self):
        for sockets in self.by_room.values():
            for connection in sockets:
                try:
                    await asyncio.wait_for(connection.close(), 2)
                except Exception:  # noqa: BLE001
                    pass


def serve(pipe, base_ws, rooms, cpus=None):
    """Process entry point: hold sockets to rooms under ``base_ws`` (``ws://host:port``) and obey ``pipe``.

    ``cpus`` (a set of CPU numbers, or None) pins this process, so that load
    generators do not take the stack's cores.
    """
    import resource

    if cpus:
        os.sched_setaffinity(0, cpus)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main():
        sockets = Sockets()
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command[0] == "open":
                _, cookie, origin, count, concurrency = command
                result = await sockets.open(lambda room: f"{base_ws}/ws/chat/{room}/", cookie, origin, rooms,
                                            count, concurrency)
            elif command[0] == "fanout":
                _, step, rate, seconds, publish = command
                result = await sockets.fanout(step, rate, seconds, publish)
            elif command[0] == "held":
                result = sockets.held()
            else:
                await sockets.close()
                pipe.send({"closed": True})
                return
            pipe.send(result)

    asyncio.run(main())
