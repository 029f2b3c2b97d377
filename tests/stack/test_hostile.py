"""Hostile input through nginx: each named case gets its documented close code or
error frame, and other clients on the same worker keep working."""

import contextlib
import uuid

import pytest
from websockets.frames import Opcode

from tests.clients import RawSocket


def room_name():
    return f"hostile-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def bystander_on(worker, client, room):
    """Yield a socket of ``client`` on ``worker`` (opening sockets until one lands there)."""
    with contextlib.ExitStack() as sockets:
        for _ in range(8):
            socket = sockets.enter_context(client.socket(room))
            if socket.worker == worker:
                yield socket
                return
        pytest.fail(f"no socket landed on {worker}")


def assert_bystander_works(bystander, body="bystander still served"):
    bystander.say(body)
    assert bystander.recv_message(body)["user"]


@pytest.mark.parametrize(
    ("opcode", "payload", "code"),
    [
        (Opcode.TEXT, b"\xff\xfe not utf-8", 1007),
        (Opcode.CONT, b"continuation without a start", 1002),
        (Opcode.TEXT, b"x" * (70 * 1024), 1009),
    ],
    ids=["invalid-utf8", "protocol-error", "oversize"],
)
def test_frame_level_violations_get_their_close_code(base_url, login, opcode, payload, code):
    alice, bob = login("alice"), login("bob")
    room = room_name()
    raw = RawSocket(base_url, room, alice.cookie_header())
    with bystander_on(raw.welcome["worker"], bob, room) as bystander:
        raw.send_frame(opcode, payload)
        assert raw.close_code() == code
        assert_bystander_works(bystander)
