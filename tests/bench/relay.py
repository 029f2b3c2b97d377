"""The baseline: a minimal relay with no Django, the practical ceiling of the chat protocol.

``python -m tests.bench.relay --port P --redis-url URL`` serves
``/ws/chat/<room>/`` with the ``websockets`` library: a welcome frame, then every
``{"type": "message", "body": ...}`` is published to the room's Redis pub/sub
channel, and one subscription per process forwards each room's messages to its
local sockets (the shape of channels_redis' pub/sub layer, without Channels).
No auth, no storage: only what fan-out across processes costs. Its frames
have the chat message frame's keys and value sizes (an id, an offset, a
8-character epoch, the user, the body, an ISO-8601 time), so both sides of a
comparison send as many bytes; the benchmark puts it behind the same nginx
hop as the stack (``tests.bench.run.relay_target``).
"""

import argparse
import asyncio
import collections
import itertools
import json
import os
import secrets
import socket
from datetime import datetime, timezone

import redis.asyncio as aioredis
from websockets.asyncio.server import broadcast, serve


async def main(port, redis_url):
    # One connection for the subscription, a bounded pool for publishing.
    publisher = aioredis.Redis.from_url(redis_url, max_connections=64)
    pool_for_publishing = asyncio.Semaphore(32)
    pubsub = aioredis.Redis.from_url(redis_url).pubsub()
    subscribing = asyncio.Lock()
    rooms = collections.defaultdict(set)  # room -> local connections
    worker = f"{socket.gethostname()}:{os.getpid()}"
    subscribed = asyncio.Event()
    ids, offsets, epoch = itertools.count(1), collections.defaultdict(itertools.count), secrets.token_hex(4)

    async def forward():
        await subscribed.wait()
        async for item in pubsub.listen():
            if item["type"] == "message":
                room = item["channel"].decode().split(":", 1)[1]
                broadcast(rooms[room], item["data"].decode())

    async def handler(connection):
        room = connection.request.path.strip("/").split("/")[-1]
        async with subscribing:
            if not rooms[room]:
                await pubsub.subscribe(f"relay:{room}")
                subscribed.set()
        rooms[room].add(connection)
        await connection.send(json.dumps({"type": "welcome", "worker": worker, "history": []}))
        try:
            async for raw in connection:
                frame = json.loads(raw)
                if frame.get("type") == "message":
                    message = {"type": "message", "id": next(ids), "room": room, "offset": next(offsets[room]) + 1,
                               "epoch": epoch, "user": "bench", "body": frame["body"],
                               "sent_at": datetime.now(timezone.utc).isoformat()}
                    async with pool_for_publishing:
                        await publisher.publish(f"relay:{room}", json.dumps(message))
        finally:
            rooms[room].discard(connection)

    forwarder = asyncio.create_task(forward())
    async with serve(handler, "127.0.0.1", port, max_queue=None, ping_interval=None):
        await asyncio.Future()
    forwarder.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.redis_url))
