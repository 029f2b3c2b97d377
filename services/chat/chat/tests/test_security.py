"""Private rooms, rate limits, the socket cap, sign-out and the connection log,
through the real ASGI application (in-memory layer, real Redis)."""

import asyncio
import json
import logging

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.test import Client

from chat import messages, presence, ratelimits
from chat.access import make_private
from chat.signals import SESSION_ENDED, session_group
from chat.tests.test_consumers import open_socket, receive

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("live_redis")]


@pytest_asyncio.fixture(autouse=True)
async def fresh_per_loop_state():
    yield
    loop = asyncio.get_running_loop()
    tracker = presence._trackers.pop(loop, None)
    if tracker is not None:
        await tracker.close()
    ratelimits._limiters.pop(loop, None)


async def closed_with(socket):
    while True:
        output = await socket.receive_output(2)
        if output["type"] == "websocket.close":
            return output.get("code")


@pytest.mark.asyncio
async def test_non_member_of_a_private_room_is_closed_with_4403(alice, bob):
    await sync_to_async(make_private)("secret", ["alice"])
    member, connected = await open_socket("secret", alice)
    assert connected and (await receive(member, "welcome"))["room"] == "secret"
    outsider, connected = await open_socket("secret", bob)
    assert await closed_with(outsider) == 4403
    await member.disconnect()


def test_private_room_refuses_non_members_over_http(alice, bob):
    make_private("secret", ["alice"])
    messages.store_message("secret", alice, "members only")
    outsider = Client()
    outsider.force_login(bob)
    assert outsider.get("/api/rooms/secret/messages").status_code == 403
    assert outsider.post("/api/rooms/secret/messages", '{"body": "x"}', content_type="application/json").status_code == 403
    assert outsider.get("/chat/secret/").status_code == 403
    assert b"secret" not in outsider.get("/").content
    member = Client()
    member.force_login(alice)
    assert [m["body"] for m in member.get("/api/rooms/secret/messages").json()["messages"]] == ["members only"]
    assert b"secret" in member.get("/").content


@pytest.mark.asyncio
async def test_flood_gets_error_frames_then_1008(alice, settings):
    settings.CHAT_RATE_LIMIT_PER_CONNECTION, settings.CHAT_RATE_LIMIT_TOLERANCE = "3/minute", 2
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    for i in range(3):
        await socket.send_json_to({"type": "message", "body": f"ok {i}"})
        assert (await receive(socket, "message"))["body"] == f"ok {i}"
    for _ in range(2):
        await socket.send_json_to({"type": "message", "body": "too many"})
        assert (await receive(socket, "error"))["code"] == "rate_limited"
    await socket.send_json_to({"type": "message", "body": "and more"})
    assert await closed_with(socket) == 1008
    stored = await sync_to_async(messages.messages_page)("lobby")
    assert [m["body"] for m in stored] == ["ok 0", "ok 1", "ok 2"]


@pytest.mark.asyncio
async def test_per_user_limit_holds_across_sockets(alice, settings):
    settings.CHAT_RATE_LIMIT_PER_USER = "2/minute"
    first, _ = await open_socket("lobby", alice)
    second, _ = await open_socket("lobby", alice)
    for socket in (first, second):
        await receive(socket, "welcome")
    await first.send_json_to({"type": "message", "body": "one"})
    await second.send_json_to({"type": "message", "body": "two"})
    await receive(first, "message")
    await receive(first, "message")
    await second.send_json_to({"type": "message", "body": "three"})
    assert (await receive(second, "error"))["code"] == "rate_limited"
    await first.disconnect()
    await second.disconnect()


@pytest.mark.asyncio
async def test_one_socket_over_the_cap_is_closed_with_1008(alice, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    open_ones = [(await open_socket("lobby", alice))[0] for _ in range(2)]
    for socket in open_ones:
        await receive(socket, "welcome")
    extra, connected = await open_socket("lobby", alice)
    assert await closed_with(extra) == 1008
    await open_ones[0].disconnect()  # a freed slot can be taken again
    again, _ = await open_socket("lobby", alice)
    assert (await receive(again, "welcome"))["type"] == "welcome"
    for socket in (open_ones[1], again):
        await socket.disconnect()


@pytest.mark.asyncio
async def test_session_ended_event_closes_with_4401(alice):
    from channels.layers import get_channel_layer

    client = Client()
    await sync_to_async(client.force_login)(alice)
    key = client.cookies["sessionid"].value
    from channels.testing import WebsocketCommunicator

    from switchyard.asgi import application

    socket = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=[
        (b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", f"sessionid={key}".encode())])
    assert (await socket.connect())[0]
    await receive(socket, "welcome")
    await get_channel_layer().group_send(session_group(key), {"type": SESSION_ENDED})
    assert await closed_with(socket) == 4401


@pytest.mark.asyncio
async def test_connection_log_is_structured_and_holds_no_bodies_or_cookies(alice, caplog):
    caplog.set_level(logging.INFO, logger="switchyard.connections")
    socket, _ = await open_socket("lobby", alice)
    await receive(socket, "welcome")
    await socket.send_json_to({"type": "message", "body": "a private thought"})
    await receive(socket, "message")
    await socket.disconnect()
    refused, _ = await open_socket("lobby", alice, origin="http://evil.example")
    records = [r for r in caplog.records if r.name == "switchyard.connections"]
    events = [(r.event, getattr(r, "reason", None)) for r in records]
    assert ("accept", None) in events and ("close", None) in events and ("reject", "origin") in events
    rejected = next(r for r in records if r.event == "reject")
    assert rejected.origin == "http://evil.example"
    for record in records:
        text = json.dumps(record.__dict__, default=str)
        assert "a private thought" not in text and "sessionid" not in text
