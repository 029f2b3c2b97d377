"""One test per private member of channels_redis, daphne (with autobahn) and Channels that Switchyard relies on,
and the start-up guard that refuses untested versions (switchyard.upstream).

When an upgrade moves the pins, these are the tests that say which member changed."""

import inspect

import pytest
from django.core.exceptions import ImproperlyConfigured

from switchyard import upstream


def parameters(function):
    return list(inspect.signature(function).parameters)


# --- the guard -------------------------------------------------------------------

def test_the_installed_versions_are_the_tested_ones():
    assert upstream.untested() == []


def test_an_untested_minor_series_is_refused_with_a_readable_line():
    problems = upstream.untested({"channels-redis": "4.4.0"})
    assert len(problems) == 1
    assert problems[0].startswith("channels-redis 4.4.0 is installed, but switchyard.layers relies on private members")
    assert "channels-redis==4.3.*" in problems[0]


def test_check_raises_at_start_and_can_be_overridden(monkeypatch):
    monkeypatch.setattr(upstream, "untested", lambda: ["daphne 5.0 is installed, but ..."])
    monkeypatch.delenv("SWITCHYARD_ALLOW_UNTESTED_UPSTREAM", raising=False)
    with pytest.raises(ImproperlyConfigured, match="daphne 5.0"):
        upstream.check()
    monkeypatch.setenv("SWITCHYARD_ALLOW_UNTESTED_UPSTREAM", "1")
    upstream.check()


def test_the_pins_match_the_tested_series():
    from pathlib import Path

    pyproject = (Path(upstream.__file__).resolve().parent.parent / "pyproject.toml").read_text()
    for name, (series, _) in upstream.TESTED.items():
        major, minor = series.split(".")
        assert f'"{name}>=' in pyproject and f',<{major}.{int(minor) + 1}"' in pyproject.split(f'"{name}>=')[1].split("\n")[0]


# --- channels_redis (switchyard.layers) --------------------------------------------

def test_channels_redis_core_layer_members():
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[("127.0.0.1", 1)])
    assert isinstance(layer.client_prefix, str)
    assert layer.receive_buffer["x"] is layer.receive_buffer["x"]  # a defaultdict of queues
    assert parameters(RedisChannelLayer.receive_single) == ["self", "channel"]
    assert inspect.iscoroutinefunction(RedisChannelLayer.receive_single)
    assert parameters(RedisChannelLayer._brpop_with_clean) == ["self", "index", "channel", "timeout"]
    assert inspect.iscoroutinefunction(RedisChannelLayer._brpop_with_clean)
    assert layer.non_local_name("specific.abc!def") == "specific.abc!"
    assert layer.require_valid_channel_name("specific.abc!def")


def test_channels_redis_utils_members():
    """switchyard.fanout builds its connections and shards exactly as the core layer does."""
    import redis.asyncio
    from channels_redis.utils import _consistent_hash, create_pool, decode_hosts

    assert decode_hosts([{"address": "redis://127.0.0.1:1/0"}]) == [{"address": "redis://127.0.0.1:1/0"}]
    pool = create_pool({"address": "redis://127.0.0.1:1/0", "socket_timeout": 3})
    assert isinstance(pool, redis.asyncio.ConnectionPool) and pool.connection_kwargs["socket_timeout"] == 3
    assert _consistent_hash("chat.lobby", 1) == 0
    assert {_consistent_hash(f"group{n}", 3) for n in range(100)} == {0, 1, 2}


# --- Twisted (switchyard.daphne_server.write_now) --------------------------------------

def test_twisted_tcp_write_buffer_members():
    from twisted.internet import abstract, tcp

    assert issubclass(tcp.Server, tcp.Connection) and issubclass(tcp.Connection, abstract.FileDescriptor)
    init = inspect.getsource(abstract.FileDescriptor)
    for member in ("self.dataBuffer", "self._tempDataLen", "self.connected", "self.disconnecting",
                   "self._writeDisconnected"):
        assert member in init, member
    assert "self.socket: socket.socket = skt" in inspect.getsource(tcp.Connection.__init__)
    # write() buffers and lets the reactor send: what write_now short-cuts when nothing is buffered.
    assert "self._tempDataBuffer.append(data)" in inspect.getsource(abstract.FileDescriptor.write)


# --- daphne and autobahn (switchyard.daphne_server) ----------------------------------

def test_daphne_protocol_members():
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
    from daphne import ws_protocol

    assert parameters(ws_protocol.WebSocketProtocol.handle_reply) == ["self", "message"]
    assert parameters(AutobahnProtocol.sendCloseFrame)[:4] == ["self", "code", "reasonUtf8", "isReply"]
    assert hasattr(AutobahnProtocol, "STATE_OPEN")
    # sendMessage checks outgoing size against this option (daphne_server lifts it for what it sends).
    assert "self.maxMessagePayloadSize" in inspect.getsource(AutobahnProtocol.sendMessage)
    assert parameters(ws_protocol.WebSocketProtocol.registerProducer) == ["self", "producer", "streaming"]
    assert "onOpen" in vars(ws_protocol.WebSocketProtocol)
    assert parameters(ws_protocol.WebSocketProtocol.serverClose)[:2] == ["self", "code"]


def test_daphne_server_members():
    from daphne.cli import CommandLineInterface
    from daphne.server import Server

    assert "signal_handlers" in parameters(Server.__init__)
    assert parameters(Server.listen_success) == ["self", "port"]
    assert parameters(Server.create_application) == ["self", "protocol", "scope"]
    assert parameters(Server.stop) == ["self"]
    assert CommandLineInterface.server_class is Server
    run = inspect.getsource(Server.run)
    # Both made in run(): protocol -> details ("disconnected" once closed), and the WebSocket factory.
    assert "self.connections = {}" in run and "self.ws_factory" in run
    assert '"disconnected"' in inspect.getsource(Server)


# --- Channels (the chat consumer's dispatch, switchyard.websocket) ----------------------

def test_channels_consumer_members():
    from channels.consumer import AsyncConsumer, get_handler_name

    assert get_handler_name({"type": "chat.message"}) == "chat_message"
    # ChatConsumer.dispatch replaces Channels' own; Channels must still call it per message.
    assert "self.dispatch" in inspect.getsource(AsyncConsumer.__call__)


def test_channels_url_router_no_route_error():
    import asyncio

    from channels.routing import URLRouter
    from django.urls import re_path

    from switchyard.websocket import NO_ROUTE_PREFIX

    router = URLRouter([re_path(r"^known/$", lambda scope, receive, send: None)])
    with pytest.raises(ValueError) as caught:
        asyncio.run(router({"type": "websocket", "path": "/unknown/"}, None, None))
    assert str(caught.value).startswith(NO_ROUTE_PREFIX)


def test_the_preflight_refuses_an_unpinned_upgrade_in_one_line(tmp_path):
    """A channels-redis 4.9 found first on the path (as after `pip install -U`): exit 2, one readable line."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "channels_redis-4.9.0.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: channels-redis\nVersion: 4.9.0\n")
    chat = Path(upstream.__file__).resolve().parents[2] / "chat"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(chat)]), "SECRET_KEY": "k" * 50,
           "DJANGO_SETTINGS_MODULE": "switchyard.settings", "SWITCHYARD_PROJECT_SETTINGS": "chatsite.settings"}
    env.pop("SWITCHYARD_ALLOW_UNTESTED_UPSTREAM", None)
    result = subprocess.run([sys.executable, "-m", "switchyard.preflight"], cwd=chat, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "channels-redis 4.9.0 is installed, but switchyard.layers relies on private members" in lines[0]
