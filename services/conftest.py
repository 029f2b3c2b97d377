"""Unit-test fixtures shared by every app: a real Redis for presence.

The channel layer of the unit tests is in memory (``switchyard.settings_test``);
presence talks to Redis directly, so a throwaway ``redis-server`` runs on a
free loopback port for the session.
"""

import shutil
import socket
import subprocess
import time

import pytest
import redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """URL of a redis-server started for this test session (stopped at its end)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def live_redis(settings, redis_url):
    """Point ``REDIS_URL`` at the session's Redis, emptied first; return its URL."""
    redis.Redis.from_url(redis_url).flushdb()
    settings.REDIS_URL = redis_url
    return redis_url
