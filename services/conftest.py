"""Unit-test fixtures shared by every app: a real Redis for presence and the channel layer.

The channel layer of the unit tests is in memory (``chatsite.settings_test``);
presence talks to Redis directly, so a throwaway ``redis-server`` runs on a
free loopback port for the session (``redis_url``). Tests of
``switchyard.layers``, which stop Redis under it, get one of their own
(``own_redis``).
"""

import shutil
import subprocess
import time

import pytest
import redis

from tests.conftest import free_ports


def start_redis(directory, port):
    """Start ``redis-server`` on 127.0.0.1:``port`` (no persistence) and wait until it answers.

    Returns the ``subprocess.Popen``; the caller terminates it. Raises
    ``RuntimeError`` when it does not answer within 5 s.
    """
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError(f"redis-server on port {port} did not answer")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """URL of a redis-server started for this test session (stopped at its end)."""
    port = free_ports(1)[0]
    process = start_redis(tmp_path_factory.mktemp("redis"), port)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture
def live_redis(settings, redis_url):
    """Point ``REDIS_URL`` at the session's Redis, emptied first; return its URL."""
    redis.Redis.from_url(redis_url).flushdb()
    settings.REDIS_URL = redis_url
    return redis_url


class RedisServer:
    """A redis-server of one test that the test may stop and start again on the same port."""

    def __init__(self, directory):
        self.directory, self.port = directory, free_ports(1)[0]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = start_redis(self.directory, self.port)

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path):
    """A running :class:`RedisServer` of this test alone (``.url``, ``.stop()``, ``.start()``)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
