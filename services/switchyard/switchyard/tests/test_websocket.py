"""switchyard.websocket.ConnectionLog: the ``upgrade`` record, and sends after the client left are dropped.

The server side is a stand-in here (an ASGI ``send`` that raises the way
daphne and uvicorn do once the client is gone); the real servers run the same
middleware in every native stack test, whose worker-log guard fails on
"Exception inside application".
"""

import asyncio
import logging

import pytest

from switchyard.websocket import ConnectionLog


class Gone(OSError):
    """What a server raises on ``send`` to a closed socket (ASGI spec 2.4: an OSError subclass)."""


def server(closed_after):
    """An ASGI ``(send, receive, sent)`` whose client leaves after ``closed_after`` messages.

    ``send`` then raises :class:`Gone`; ``receive`` gives ``websocket.disconnect`` (code 1006).
    """
    sent = []

    async def send(message):
        if len(sent) >= closed_after:
            raise Gone("Attempt to send on a closed protocol")
        sent.append(message)

    async def receive():
        return {"type": "websocket.disconnect", "code": 1006}

    return send, receive, sent


def run(application, send, receive):
    scope = {"type": "websocket", "path": "/ws/location/", "client": ("198.51.100.7", 50000)}
    return asyncio.run(ConnectionLog(application)(scope, receive, send))


def test_sends_after_the_client_left_are_dropped_and_the_consumer_still_cleans_up(caplog):
    cleaned_up = []

    async def consumer(scope, receive, send):  # the tutorial's shape: sends to the group, catches nothing
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "position"})
        await send({"type": "websocket.send", "text": "another position"})
        message = await receive()
        cleaned_up.append(message["type"])  # where disconnect() / group_discard run

    caplog.set_level(logging.INFO, logger="switchyard.connections")
    send, receive, sent = server(closed_after=1)
    run(consumer, send, receive)
    assert [message["type"] for message in sent] == ["websocket.accept"]
    assert cleaned_up == ["websocket.disconnect"]
    assert [(record.event, getattr(record, "reason", None)) for record in caplog.records] == [
        ("upgrade", None), ("gone", "send after the client left")]


def test_errors_of_the_application_propagate():
    async def consumer(scope, receive, send):
        await send({"type": "websocket.accept"})
        raise ConnectionRefusedError("the project's own Redis call failed")  # an OSError, not from send

    send, receive, _ = server(closed_after=10)
    with pytest.raises(ConnectionRefusedError):
        run(consumer, send, receive)


def test_http_sends_are_not_touched():
    async def application(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    send, receive, _ = server(closed_after=0)
    scope = {"type": "http", "path": "/", "client": ("198.51.100.7", 50000)}
    with pytest.raises(Gone):
        asyncio.run(ConnectionLog(application)(scope, receive, send))


@pytest.mark.asyncio
async def test_a_path_no_route_matches_is_refused_with_one_record_and_no_traceback(caplog):
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator
    from django.urls import re_path

    from switchyard.websocket import RefuseUnknownRoutes

    async def never(scope, receive, send):  # pragma: no cover - no path reaches it
        raise AssertionError("routed")

    application = RefuseUnknownRoutes(URLRouter([re_path(r"^ws/known/$", never)]))
    communicator = WebsocketCommunicator(application, "/ws/nothing/")
    connected, _ = await communicator.connect()
    assert not connected  # refused at the handshake (the servers answer 403)
    records = [r for r in caplog.records if r.name == "switchyard.connections"]
    assert [(r.event, r.reason) for r in records] == [("reject", "no_route")]
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.asyncio
async def test_a_send_that_waits_too_long_closes_the_socket_with_4408_and_drops_later_sends(caplog):
    from switchyard.websocket import SlowReaderGuard

    sent, release = [], asyncio.Event()

    async def server_send(message):  # a server whose write buffer is full until released
        if message["type"] == "websocket.send":
            await release.wait()
        sent.append(message)

    async def app(scope, receive, send):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "stuck"})
        await send({"type": "websocket.send", "text": "dropped"})

    await SlowReaderGuard(app, timeout=0.1)({"type": "websocket", "path": "/ws/x/"}, None, server_send)
    await asyncio.sleep(0.05)  # the close goes out in the background (the server bounds it)
    assert sent == [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 4408}]
    records = [r for r in caplog.records if r.name == "switchyard.connections"]
    assert [(r.event, r.code, r.reason) for r in records] == [("close", 4408, "slow_reader")]
