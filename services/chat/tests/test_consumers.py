"""The chat consumer under the real ASGI application (Origin validator, auth
middleware, routing) with Channels' WebsocketCommunicator and an in-memory
channel layer."""

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat import messages
from switchyard.asgi import application
from switchyard.worker import worker_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


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


async def test_welcome_names_worker_and_carries_history(alice):
    await sync_to_async(messages.store_message)("lobby", alice, "earlier")
    socket, connected = await open_socket("lobby", alice)
    assert connected
    welcome = await socket.receive_json_from()
    assert welcome["type"] == "welcome"
    assert welcome["worker"] == worker_id()
    assert [m["body"] for m in welcome["history"]] == ["earlier"]
    await socket.disconnect()


async def test_message_reaches_every_socket_of_the_room(alice, bob):
    first, _ = await open_socket("lobby", alice)
    second, _ = await open_socket("lobby", bob)
    other_room, _ = await open_socket("elsewhere", bob)
    for socket in (first, second, other_room):
        await socket.receive_json_from()
    await first.send_json_to({"type": "message", "body": "hello"})
    for socket in (first, second):
        frame = await socket.receive_json_from()
        assert frame["type"] == "message"
        assert (frame["room"], frame["user"], frame["body"]) == ("lobby", "alice", "hello")
        assert isinstance(frame["id"], int) and frame["sent_at"].endswith("+00:00")
    assert await other_room.receive_nothing()
    for socket in (first, second, other_room):
        await socket.disconnect()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{oops", "invalid_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "message", "body": ""}', "empty_body"),
        ('{"type": "message", "body": "' + "x" * 2001 + '"}', "body_too_long"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(alice, text, code):
    socket, _ = await open_socket("lobby", alice)
    await socket.receive_json_from()
    await socket.send_to(text_data=text)
    error = await socket.receive_json_from()
    assert error["type"] == "error" and error["code"] == code and error["detail"]
    await socket.send_json_to({"type": "message", "body": "still here"})
    assert (await socket.receive_json_from())["body"] == "still here"
    await socket.disconnect()


async def test_binary_frames_get_an_error(alice):
    socket, _ = await open_socket("lobby", alice)
    await socket.receive_json_from()
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await socket.receive_json_from())["code"] == "binary_frame"
    await socket.disconnect()


async def test_socket_without_session_is_refused(db):
    _, connected = await open_socket("lobby", None)
    assert not connected


@pytest.mark.parametrize("origin", ["http://evil.example", None])
async def test_foreign_or_missing_origin_is_refused(alice, origin):
    _, connected = await open_socket("lobby", alice, origin=origin)
    assert not connected


async def test_after_returns_only_what_was_missed(alice):
    stored = [await sync_to_async(messages.store_message)("lobby", alice, f"m{i}") for i in range(5)]
    socket, _ = await open_socket("lobby", alice, query=f"after={stored[2]['id']}")
    welcome = await socket.receive_json_from()
    assert [m["body"] for m in welcome["history"]] == ["m3", "m4"]
    await socket.disconnect()


async def test_bad_after_is_reported_then_welcome_follows(alice):
    socket, _ = await open_socket("lobby", alice, query="after=soon")
    assert (await socket.receive_json_from())["code"] == "invalid_after"
    assert (await socket.receive_json_from())["type"] == "welcome"
    await socket.disconnect()


async def test_group_event_already_in_the_welcome_is_not_sent_twice(alice):
    stored = await sync_to_async(messages.store_message)("lobby", alice, "raced")
    socket, _ = await open_socket("lobby", alice)
    welcome = await socket.receive_json_from()
    assert [m["id"] for m in welcome["history"]] == [stored["id"]]
    # The broadcast of a message that the history already carried arrives late.
    await messages.broadcast(stored)
    assert await socket.receive_nothing()
    await socket.disconnect()


async def test_history_is_limited_to_the_most_recent(alice, settings):
    settings.CHAT_HISTORY_LIMIT = 3
    for i in range(5):
        await sync_to_async(messages.store_message)("lobby", alice, f"m{i}")
    socket, _ = await open_socket("lobby", alice)
    assert [m["body"] for m in (await socket.receive_json_from())["history"]] == ["m2", "m3", "m4"]
    await socket.disconnect()


async def test_disconnect_leaves_the_group(alice):
    socket, _ = await open_socket("lobby", alice)
    await socket.receive_json_from()
    await socket.disconnect()
    layer = get_channel_layer()
    assert not layer.groups.get(messages.group_name("lobby"))


async def test_joining_creates_the_room(alice):
    from chat.models import Room

    socket, _ = await open_socket("brand-new", alice)
    await socket.receive_json_from()
    assert await Room.objects.filter(slug="brand-new").aexists()
    await socket.disconnect()
