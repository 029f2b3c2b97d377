"""The baseline: a minimal relay with no Django, the practical ceiling of the chat protocol.

``python -m tests.bench.relay --port P --redis-url URL`` serves
``/ws/chat/<room>/`` with the ``websockets`` library: a welcome frame, then every
``{"type": "message", "body": ...}`` published to the Redis pub/sub channel of
the room and forwarded to each socket of the room as a message frame. No
auth, no storage, no offsets: only what fan-out across processes costs.
"""

import argparse
import asyncio
import json
import os
import socket

import redis.asyncio as aioredis
from websockets.asyncio.server import serve


async def main(port, redis_url):
    publisher = aioredis.Redis.from_url(redis_url)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    async def handler(connection):
        room = connection.request.path.strip("/").split("/")[-1]
        channel = f"relay:{room}"
        pubsub = publisher.pubsub()
        await pubsub.subscribe(channel)
        await connection.send(json.dumps({"type": "welcome", "worker": worker, "history": []}))

        async def forward():
            async for item in pubsub.listen():
                if item["type"] == "message":
                    await connection.send(item["data"].decode())

        forwarder = asyncio.create_task(forward())
        try:
            async for raw in connection:
                frame = json.loads(raw)
                if frame.get("type") == "message":
                    message = {"type": "message", "room": room, "user": "relay", "body": frame["body"]}
                    await publisher.publish(channel, json.dumps(message))
        finally:
            forwarder.cancel()
            await pubsub.aclose()

    async with serve(handler, "127.0.0.1", port, max_queue=None, ping_interval=None):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.redis_url))
