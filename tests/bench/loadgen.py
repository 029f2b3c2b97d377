"""Load-generator processes for the benchmarks: WebSocket clients (the ``websockets``
library) in separate processes, driven step by step by the orchestrator.

Each :func:`serve` process holds its share of the sockets and answers commands
sent over a ``multiprocessing`` pipe:

- ``("open", url, cookie, origin, count, concurrency)``: open ``count`` sockets;
  answers ``{"opened", "failed", "seconds", "workers": {worker: n}}``.
- ``("fanout", step, rate, seconds, publish)``: with ``publish``, send
  ``rate`` messages/s spread over this process's rooms for ``seconds``; every
  process counts the frames of ``step`` it receives until ``seconds`` + 1 s;
  answers ``{"sent", "received", "latencies_ms": [...]}`` (a sample).
- ``("close",)``: close everything and exit.

Message bodies carry ``"<step>|<send time>"`` so latency is measured end to end
(same clock: everything runs on this machine).
"""

import asyncio
import collections
import json
import random
import time

from websockets.asyncio.client import connect

LATENCY_SAMPLE = 20000  # latencies kept per process per step


class Sockets:
    """The sockets of one load-generator process, grouped by room."""

    def __init__(self):
        self.by_room = collections.defaultdict(list)
        self.received = collections.Counter()
        self.latencies = collections.defaultdict(list)

    async def open(self, url_of, cookie, origin, rooms, count, concurrency):
        """Open ``count`` sockets, round-robin over ``rooms``, at most ``concurrency`` handshakes at once."""
        gate = asyncio.Semaphore(concurrency)
        workers = collections.Counter()
        failed = 0

        async def one(index):
            nonlocal failed
            room = rooms[index % len(rooms)]
            async with gate:
                try:
                    connection = await connect(url_of(room), origin=origin, additional_headers={"Cookie": cookie},
                                               open_timeout=60, max_queue=None, ping_interval=None)
                    welcome = json.loads(await connection.recv())
                except Exception:  # noqa: BLE001 - counted, reported as failures
                    failed += 1
                    return
            workers[welcome.get("worker", "?")] += 1
            self.by_room[room].append(connection)
            asyncio.get_running_loop().create_task(self.read(connection))

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        return {"opened": count - failed, "failed": failed, "seconds": time.monotonic() - started,
                "workers": dict(workers)}

    async def read(self, connection):
        try:
            async for raw in connection:
                now = time.time()
                frame = json.loads(raw)
                if frame.get("type") != "message":
                    continue
                step, _, sent = frame["body"].partition("|")
                self.received[step] += 1
                sample = self.latencies[step]
                if len(sample) < LATENCY_SAMPLE:
                    sample.append((now - float(sent)) * 1000)
        except Exception:  # noqa: BLE001 - a closed socket ends its reader
            return

    async def fanout(self, step, rate, seconds, publish):
        """Publish at ``rate`` messages/s (if ``publish``) for ``seconds``; report what arrived."""
        sent = 0
        if publish and self.by_room:
            publishers = [sockets[0] for sockets in self.by_room.values() if sockets]
            interval = 1.0 / rate
            started = time.monotonic()
            next_at = started
            while time.monotonic() - started < seconds:
                connection = random.choice(publishers)
                try:
                    await connection.send(json.dumps({"type": "message", "body": f"{step}|{time.time():.6f}"}))
                    sent += 1
                except Exception:  # noqa: BLE001
                    pass
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.sleep(1.0)
        else:
            await asyncio.sleep(seconds + 1.0)
        step = str(step)
        return {"sent": sent, "received": self.received.pop(step, 0), "latencies_ms": self.latencies.pop(step, [])}

    async def close(self):
        for sockets in self.by_room.values():
            for connection in sockets:
                try:
                    await asyncio.wait_for(connection.close(), 2)
                except Exception:  # noqa: BLE001
                    pass


def serve(pipe, base_ws, rooms):
    """Process entry point: hold sockets to rooms under ``base_ws`` (``ws://host:port``) and obey ``pipe``."""
    import resource

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
            else:
                await sockets.close()
                pipe.send({"closed": True})
                return
            pipe.send(result)

    asyncio.run(main())
