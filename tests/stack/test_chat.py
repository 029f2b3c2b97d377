"""Chat across ASGI workers, through nginx and Redis, with real WebSocket clients."""

import contextlib
import os
import signal
import time
import uuid

import pytest
from websockets.exceptions import InvalidStatus

from deploy.native import port_accepts


def room_name():
    return f"room-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def sockets_on_two_workers(client_a, client_b, room):
    """Open sockets for two clients until they sit on different ASGI workers.

    nginx's least_conn sends a new socket to the worker with the fewest; a few
    tries settle it even with sockets of other tests around. Yields (a, b).
    """
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(client_a.socket(room))
        for _ in range(6):
            second = stack.enter_context(client_b.socket(room))
            if second.worker != first.worker:
                yield first, second
                return
        pytest.fail(f"every socket landed on {first.worker}")


def test_message_crosses_workers(login):
    alice, bob = login("alice"), login("bob")
    room = room_name()
    with sockets_on_two_workers(alice, bob, room) as (a, b):
        assert a.worker != b.worker
        a.say("hello from the first worker")
        frame = b.recv_message("hello from the first worker")
        assert (frame["user"], frame["room"]) == ("alice", room)
        assert isinstance(frame["id"], int)
        b.say("and back")
        assert a.recv_message("and back")["user"] == "bob"


def test_api_post_reaches_sockets_on_both_workers(login):
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    room = room_name()
    with sockets_on_two_workers(alice, bob, room) as (a, b):
        response = carol.post_message(room, "pushed by gunicorn")
        assert response.status_code == 201
        stored = response.json()
        assert stored["delivery"] == "live"
        for socket_ in (a, b):
            frame = socket_.recv_message("pushed by gunicorn")
            assert frame["id"] == stored["id"] and frame["user"] == "carol"


def test_reconnect_recovers_what_was_missed(login):
    alice, bob = login("alice"), login("bob")
    room = room_name()
    with alice.socket(room) as a:
        a.say("before")
        seen = a.recv_message("before")
    missed = [bob.post_message(room, f"missed {i}").json()["offset"] for i in range(3)]
    assert missed == [2, 3, 4]
    with alice.socket(room, after=seen["offset"], epoch=seen["epoch"]) as a:
        assert a.welcome["recovered"] is True
        assert [m["offset"] for m in a.welcome["history"]] == missed
        assert (a.welcome["epoch"], a.welcome["offset"]) == (seen["epoch"], 4)
    with alice.socket(room, after=seen["offset"], epoch="stale") as a:  # another epoch: reload
        assert a.welcome["recovered"] is False
    with alice.socket(room) as a:  # without ?after: the recent history
        assert [m["body"] for m in a.welcome["history"]] == ["before", "missed 0", "missed 1", "missed 2"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ({"type": "dance"}, "unknown_type"),
        ({"type": "message", "body": ""}, "empty_body"),
        ({"type": "message", "body": "x" * 2001}, "body_too_long"),
    ],
)
def test_bad_input_gets_an_error_frame_and_the_socket_lives(login, frame, code):
    alice = login("alice")
    room = room_name()
    with alice.socket(room) as a:
        a.send(frame)
        error = a.recv(frame_type="error")
        assert error["code"] == code and error["detail"]
        a.say("still alive")
        assert a.recv_message("still alive")["user"] == "alice"
    assert [m["body"] for m in alice.messages_after(room)] == ["still alive"]


def test_foreign_origin_is_refused_with_403(login):
    alice = login("alice")
    with pytest.raises(InvalidStatus) as refused:
        with alice.socket("lobby", origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


def test_socket_without_session_is_refused_with_403(login):
    alice = login("alice")
    with pytest.raises(InvalidStatus) as refused:
        with alice.socket("lobby", cookie=False):
            pass
    assert refused.value.response.status_code == 403


def test_asgi_workers_run_below_gunicorns_cpu_priority(stack):
    """ASGI_CPU_WEIGHT=25 (defaults.env) becomes nice 6 for every ASGI worker; gunicorn keeps nice 0."""
    import psutil

    from deploy.native.render import nice_for_weight

    assert nice_for_weight(25) == 6 and nice_for_weight(100) == 0 and nice_for_weight(1) == 19
    asgi = [int(stack.ctl("pid", f"asgi:asgi-{port}").stdout) for port in stack.config.asgi_ports]
    assert [psutil.Process(pid).nice() for pid in asgi] == [nice_for_weight(stack.config.asgi_cpu_weight)] * len(asgi)
    assert stack.config.asgi_cpu_weight == 25
    assert psutil.Process(int(stack.ctl("pid", "web").stdout)).nice() == 0


def test_supervisor_restarts_a_killed_worker(stack, login):
    name = f"asgi:asgi-{stack.config.asgi_ports[0]}"
    old_pid = int(stack.ctl("pid", name).stdout)
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    new_pid = old_pid
    while time.monotonic() < deadline:
        status = stack.ctl("status", name).stdout
        if "RUNNING" in status:
            new_pid = int(stack.ctl("pid", name).stdout)
            if new_pid != old_pid and port_accepts(stack.config.asgi_ports[0]):
                break
        time.sleep(0.2)
    assert new_pid != old_pid, f"{name} was not restarted: {stack.ctl('status', name).stdout}"
    # The stack still chats across both workers afterwards.
    test_message_crosses_workers(login)


def test_oversize_message_ends_the_socket_and_the_worker_lives_on(stack, login):
    """Over WEBSOCKET_MAX_MESSAGE_BYTES the ASGI server closes with 1009 before Django sees it."""
    from websockets.exceptions import ConnectionClosed

    alice = login("alice")
    room = room_name()
    with alice.socket(room) as a:
        worker = a.worker
        a.send({"type": "message", "body": "x" * (70 * 1024)})  # over the 64 KiB default
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # frames sent before the close (the join's presence) come first
                a.recv(timeout=10)
    received = closed.value.rcvd
    assert received is not None and received.code == 1009
    with contextlib.ExitStack() as sockets:  # the same worker still serves sockets
        opened = [sockets.enter_context(alice.socket(room)) for _ in range(4)]
        assert worker in {s.worker for s in opened}
        opened[0].say("after the oversize one")
        assert opened[-1].recv_message("after the oversize one")
    assert [m["body"] for m in alice.messages_after(room)] == ["after the oversize one"]


def test_joining_during_a_flood_loses_and_repeats_nothing(login):
    """Sockets that join while messages are being stored get a gapless, duplicate-free stream.

    The welcome is built while another thread posts as fast as it can; each
    joiner's history plus its live frames must be exactly the offsets from its
    history's start to the last one, once each, in order.
    """
    import threading

    alice, bob = login("alice"), login("bob")
    room = room_name()
    stop = threading.Event()

    def flood():
        for i in range(400):
            if stop.is_set():
                return
            bob.post_message(room, f"flood {i}")

    poster = threading.Thread(target=flood)
    poster.start()
    streams = []
    try:
        for _ in range(8):
            with alice.socket(room) as joiner:
                offsets = [m["offset"] for m in joiner.welcome["history"]]
                start = joiner.welcome["offset"]
                deadline = time.monotonic() + 0.5
                while time.monotonic() < deadline:
                    try:
                        frame = joiner.recv(timeout=max(0.01, deadline - time.monotonic()), frame_type="message")
                    except TimeoutError:
                        break
                    offsets.append(frame["offset"])
                streams.append((start, offsets))
    finally:
        stop.set()
        poster.join()
    assert any(offsets and offsets[-1] > start for start, offsets in streams), "no joiner saw live frames"
    for start, offsets in streams:
        assert offsets == list(range(offsets[0], offsets[-1] + 1)), f"gap or duplicate around welcome offset {start}"
