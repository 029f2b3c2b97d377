"""switchyard.websocket.ConnectionLog: the ``upgrade`` record, and a send after the client left ends quietly."""

import asyncio
import logging

import pytest

from switchyard.websocket import ConnectionLog


class Gone(OSError):
    """What a server raises on ``send`` to a closed socket (ASGI spec 2.4: an OSError subclass)."""


def server_send(closed_after):
    """An ASGI ``send`` that accepts ``closed_after`` messages, then raises :class:`Gone` (the client left)."""
    sent = []

    async def send(message):
        if len(sent) >= closed_after:
            raise Gone("Attempt to send on a closed protocol")
        sent.append(message)

    return send, sent


async def receive():
    await asyncio.sleep(3600)


def run(application, send):
    scope = {"type": "websocket", "path": "/ws/location/", "client": ("198.51.100.7", 50000)}
    return asyncio.run(ConnectionLog(application)(scope, receive, send))


def test_a_send_after_the_client_left_ends_the_connection_with_one_gone_record(caplog):
    async def consumer(scope, receive, send):  # sends to its group as the client leaves, catches nothing
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "position"})

    caplog.set_level(logging.INFO, logger="switchyard.connections")
    send, sent = server_send(closed_after=1)
    assert run(consumer, send) is None
    assert [message["type"] for message in sent] == ["websocket.accept"]
    assert [(record.event, getattr(record, "reason", None)) for record in caplog.records] == [
        ("upgrade", None), ("gone", "send after the client left")]


def test_other_errors_of_the_application_propagate():
    async def consumer(scope, receive, send):
        await send({"type": "websocket.accept"})
        raise ConnectionRefusedError("the project's own Redis call failed")  # an OSError, not from send

    with pytest.raises(ConnectionRefusedError):
        run(consumer, server_send(closed_after=10)[0])


def test_a_send_error_the_application_turns_into_another_propagates():
    async def consumer(scope, receive, send):
        await send({"type": "websocket.accept"})
        try:
            await send({"type": "websocket.send", "text": "x"})
        except OSError:
            raise RuntimeError("handled badly") from None

    with pytest.raises(RuntimeError):
        run(consumer, server_send(closed_after=1)[0])
