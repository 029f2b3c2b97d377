"""The chat consumer under the real ASGI application (Origin validator, auth
middleware, routing) with Channels' WebsocketCommunicator, an in-memory
channel layer and a real Redis for presence."""

import asyncio

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat import messages, presence
from switchyard.asgi import application
from switchyard.worker import worker_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.usefixtures("live_redis")]

store = sync_to_async(messages.store_message)


@pytest_asyncio.fixture(autouse=True)
async def stop_presence_heartbeat():
    yield
    tracker = presence._trackers.pop(asyncio.get_running_loop(), None)
    if tracker is not None:
        await tracker.close()


async def session_cookie(user):
    client = Client()
    await sync_to_async(client.force_login)(user)
    return client.cookies["sessionid"].value


async def open_socket(room, user=None, origin="http://localhost", query=""):
    headers = [(b"host", b"localhost")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if user is not None:
        headers.append((b"cookie", f"sessionid={await session_cookie(user)}".encode()))
    path = f"/ws/chat/{room}/" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


async def receive(socket, frame_type):
    """Next frame of ``frame_type``, skipping others (presence frames interleave)."""
    while True:
        frame = await socket.receive_json_from()
        if frame["type"] == frame_type:
            return frame


async def test_welcome_names_worker_room_epoch_offset_and_history(alice):
    stored = await store("lobby", alice, "earlier")
    socket, connected = await open_socket("lobby", alice)
    assert connected
    welcome = await socket.receive_json_from()
    assert welcome["type"] == "welcome"
    assert welcome["worker"] == worker_id()
    assert (welcome["room"], welcome["epoch"], welcome["offset"]) == ("lobby", stored["epoch"], 1)
    assert welcome["recovered"] is False
    assert [(m["offset"], m["body"]) for m in welcome["history"]] == [(1, "earlier")]
    await socket.disconnect()


async def test_message_reaches_every_socket_of_the_room_with_its_offset(alice, bob):
    first, _ = await open_socket("lobby", alice)
    second, _ = await open_socket("lobby", bob)
    other_room, _ = await open_socket("elsewhere", bob)
    welcome = await receive(first, "welcome")
    for socket in (second, other_room):
        await receive(socket, "welcome")
    await first.send_json_to({"type": "message", "body": "hello"})
    for socket in (first, second):
        frame = await receive(socket, "message")
        assert (frame["room"], frame["user"], frame["body"]) == ("lobby", "alice", "hello")
        assert (frame["offset"], frame["epoch"]) == (1, welcome["epoch"])
        assert isinstance(frame["id"], int) and frame["sent_at"].endswith("+00:00")
    # The other room sees presence changes of its own only, never lobby's message.
    while not await other_room.receive_nothing(0.2):
        assert (await other_room.receive_json_from())["type"] == "presence"
    for socket in (first, second, other_room):
        await socket.disconnect()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{oops", "invalid_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "message", "body": ""}', "empty_body"),
        ('{"type": "message", "body": "' + "x" * 2001 + '"}', "body_too_long"),
        # Issue #16: these closed the socket with 1011 (RecursionError, UnicodeEncodeError).
        ("[" * 50000 + "]" * 50000, "invalid_json"),
        ('{"type": "message", "body": ' + "[" * 30000 + "]" * 30000 + "}", "invalid_json"),
        ('{"type": "message", "body": "\\ud800"}', "invalid_text"),
        ('{"type": "message", "body": "a\\udfffb"}', "invalid_text"),
        ('{"type": "message", "body": "nul \\u0000 inside"}', "invalid_text"),
        ('{"type": ' + "[" * 30000 + "]" * 30000 + "}", "invalid_json"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(alice, text, code):
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    await socket.send_to(text_data=text)
    error = await receive(socket, "error")
    assert error["code"] == code and error["detail"]
    await socket.send_json_to({"type": "message", "body": "still here"})
    assert (await receive(socket, "message"))["body"] == "still here"
    await socket.disconnect()


async def test_binary_frames_get_an_error(alice):
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await receive(socket, "error"))["code"] == "binary_frame"
    await socket.disconnect()


async def test_socket_without_session_is_refused(db):
    _, connected = await open_socket("lobby", None)
    assert not connected


@pytest.mark.parametrize("origin", ["http://evil.example", None])
async def test_foreign_or_missing_origin_is_refused(alice, origin):
    _, connected = await open_socket("lobby", alice, origin=origin)
    assert not connected


async def test_recovery_returns_exactly_what_was_missed(alice):
    stored = [await store("lobby", alice, f"m{i}") for i in range(5)]
    epoch = stored[0]["epoch"]
    socket, _ = await open_socket("lobby", alice, query=f"after=2&epoch={epoch}")
    welcome = await receive(socket, "welcome")
    assert welcome["recovered"] is True
    assert [m["offset"] for m in welcome["history"]] == [3, 4, 5]
    await socket.disconnect()


@pytest.mark.parametrize(
    "query",
    ["after=2&epoch=00000000", "after=2", "after=99&epoch={epoch}", "after=0&epoch={epoch}"],
    ids=["other-epoch", "no-epoch", "future-offset", "beyond-window"],
)
async def test_unrecoverable_gaps_get_the_latest_history(alice, settings, query):
    settings.CHAT_RECOVERY_WINDOW, settings.CHAT_HISTORY_LIMIT = 4, 3
    stored = [await store("lobby", alice, f"m{i}") for i in range(5)]
    socket, _ = await open_socket("lobby", alice, query=query.format(epoch=stored[0]["epoch"]))
    welcome = await receive(socket, "welcome")
    assert welcome["recovered"] is False
    assert [m["offset"] for m in welcome["history"]] == [3, 4, 5]
    await socket.disconnect()


async def test_bad_after_is_reported_then_welcome_follows(alice):
    socket, _ = await open_socket("lobby", alice, query="after=soon")
    assert (await socket.receive_json_from())["code"] == "invalid_after"
    assert (await socket.receive_json_from())["type"] == "welcome"
    await socket.disconnect()


async def test_late_broadcast_of_a_message_in_the_welcome_is_dropped(alice):
    stored = await store("lobby", alice, "raced")
    socket, _ = await open_socket("lobby", alice)
    welcome = await receive(socket, "welcome")
    assert [m["offset"] for m in welcome["history"]] == [stored["offset"]]
    await messages.broadcast(stored)  # arrives after the welcome already carried it
    await socket.send_json_to({"type": "message", "body": "next"})
    assert (await receive(socket, "message"))["body"] == "next"  # not "raced" again
    await socket.disconnect()


async def test_a_gap_in_group_events_is_filled_from_the_database_in_order(alice):
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    # The channel layer lost the first two events; only the third arrives.
    stored = [await store("lobby", alice, f"m{i}") for i in range(3)]
    await messages.broadcast(stored[2])
    received = [await receive(socket, "message") for _ in range(3)]
    assert [m["offset"] for m in received] == [1, 2, 3]
    await messages.broadcast(stored[1])  # a late duplicate
    await socket.send_json_to({"type": "presence"})
    assert (await socket.receive_json_from())["type"] == "presence"
    await socket.disconnect()


async def test_history_reset_closes_with_4000_and_the_next_welcome_does_not_recover(alice):
    first = await store("lobby", alice, "old")
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    await sync_to_async(messages.reset_history)("lobby")
    await messages.broadcast(await store("lobby", alice, "new"))
    while True:
        output = await socket.receive_output()
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4000
    again, _ = await open_socket("lobby", alice, query=f"after=1&epoch={first['epoch']}")
    welcome = await receive(again, "welcome")
    assert welcome["recovered"] is False and welcome["epoch"] != first["epoch"]
    assert [m["body"] for m in welcome["history"]] == ["new"]
    await again.disconnect()


async def test_presence_counts_a_user_with_two_tabs_once(alice, bob):
    tab1, _ = await open_socket("lobby", alice)
    assert (await receive(tab1, "presence"))["users"] == ["alice"]
    tab2, _ = await open_socket("lobby", alice)
    assert (await receive(tab2, "presence"))["users"] == ["alice"]
    other, _ = await open_socket("lobby", bob)
    assert (await receive(tab1, "presence"))["users"] in (["alice"], ["alice", "bob"])
    await other.send_json_to({"type": "presence"})
    assert (await receive(other, "presence")) == {"type": "presence", "room": "lobby", "users": ["alice", "bob"]}
    await other.disconnect()
    await tab2.disconnect()
    # tab1 still open: alice stays; bob has left.
    await tab1.send_json_to({"type": "presence"})
    frame = await receive(tab1, "presence")
    while frame["users"] != ["alice"]:
        frame = await receive(tab1, "presence")
    assert frame["users"] == ["alice"]
    await tab1.disconnect()


async def test_lost_redis_closes_the_socket_with_1013(alice, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens: the socket cap cannot be counted
    socket, connected = await open_socket("lobby", alice)
    assert connected
    output = await socket.receive_output()
    assert output == {"type": "websocket.close", "code": 1013}


async def test_disconnect_leaves_the_group(alice):
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    await socket.disconnect()
    layer = get_channel_layer()
    assert not layer.groups.get(messages.group_name("lobby"))


async def test_joining_creates_the_room(alice):
    from chat.models import Room

    socket, _ = await open_socket("brand-new", alice)
    await receive(socket, "welcome")
    assert await Room.objects.filter(slug="brand-new").aexists()
    await socket.disconnect()


@pytest.mark.parametrize("watching", [True, False], ids=["layer with the reconnect signal", "layer without it"])
async def test_a_failed_broadcast_keeps_a_watching_socket_open_and_the_message_stored(alice, monkeypatch, watching):
    """The branch of ``ChatConsumer.broadcast_stored``; the real layer's side is in the stack's Redis fault tests."""
    import redis

    from chat.models import Message

    layer = get_channel_layer()

    async def group_send(group, message):
        raise redis.ConnectionError("channel layer lost Redis: test")

    if watching:
        monkeypatch.setattr(layer, "watch_reconnects", lambda channel: None, raising=False)
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    monkeypatch.setattr(layer, "group_send", group_send)
    await socket.send_json_to({"type": "message", "body": "stored anyway"})
    if watching:
        outputs = []
        while not await socket.receive_nothing(timeout=0.5):
            outputs.append(await socket.receive_output())
        # no echo yet (it comes with the catch-up), no close: presence frames at most
        assert all(o["type"] == "websocket.send" and '"presence"' in o["text"] for o in outputs), outputs
        await socket.disconnect()
    else:
        output = await socket.receive_output(timeout=2)
        while output["type"] != "websocket.close":
            output = await socket.receive_output(timeout=2)
        assert output["code"] == 1013
    assert await Message.objects.filter(body="stored anyway").aexists()
