"""Hostile input through nginx: each named case gets its documented close code or
error frame, and other clients on the same worker keep working."""

import contextlib
import json
import os
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode

from deploy.native import wait_for_port
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


@pytest.mark.parametrize(
    ("frame", "code"),
    [("{not json", "invalid_json"), ({"type": "dance"}, "unknown_type"), ({"type": "message", "body": ""}, "empty_body")],
)
def test_bad_frames_get_an_error_frame_and_a_bystander_keeps_working(login, frame, code):
    mallory, bob = login("mallory"), login("bob")
    room = room_name()
    with mallory.socket(room) as attacker, bystander_on(attacker.worker, bob, room) as bystander:
        attacker.send(frame)
        assert attacker.recv(frame_type="error")["code"] == code
        assert_bystander_works(bystander)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("[" * 30000 + "]" * 30000, "invalid_json"),
        ('{"type": "message", "body": ' + "{\"a\":" * 10000 + "1" + "}" * 10000 + "}", "invalid_json"),
        ('{"type": "message", "body": "\\ud800"}', "invalid_text"),
        ('{"type": "message", "body": "tail \\udfff"}', "invalid_text"),
        ('{"type": "message", "body": "nul \\u0000"}', "invalid_text"),
    ],
    ids=["nested-arrays", "nested-objects", "lone-high-surrogate", "lone-low-surrogate", "nul"],
)
def test_deep_json_and_unstorable_text_get_an_error_frame_not_1011(stack, login, frame, code):
    """Issue #16: these closed the socket with 1011 and logged a traceback (RecursionError, UnicodeEncodeError)."""
    mallory, bob = login("mallory"), login("bob")
    room = room_name()
    with mallory.socket(room) as attacker, bystander_on(attacker.worker, bob, room) as bystander:
        attacker.send(frame)
        assert attacker.recv(frame_type="error")["code"] == code
        attacker.say("the attacker's socket still works")
        assert attacker.recv_message("the attacker's socket still works")
        assert_bystander_works(bystander)


@pytest.mark.parametrize("path", ["/ws/nothing/", "/ws/chat/" + "r" * 65 + "/", "/ws/chat/a/b/", "/ws/"],
                         ids=["unknown", "room-too-long", "extra-segment", "prefix-only"])
def test_a_path_no_route_matches_is_refused_with_403_and_one_log_line(stack, login, path):
    """Issue #16: such handshakes were answered 500 with a traceback per attempt in the worker log."""
    from websockets.sync.client import connect

    mallory = login("mallory")
    logs = sorted(stack.log_dir.glob("asgi-*.log"))
    sizes = {log: log.stat().st_size for log in logs}
    url = stack.config.url.replace("http://", "ws://") + path
    for _ in range(3):
        with pytest.raises(InvalidStatus) as refused:
            with connect(url, origin=stack.config.url, additional_headers={"Cookie": mallory.cookie_header()},
                         open_timeout=10):
                pass
        assert refused.value.response.status_code == 403

    def written():
        text = ""
        for log in logs:
            with open(log, errors="replace") as handle:
                handle.seek(sizes[log])
                text += handle.read()
        return text

    deadline = time.monotonic() + 10  # supervisord copies the workers' output into the logs a moment later
    while written().count('"reason": "no_route"') < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Traceback" not in written() and "No route found" not in written()
    assert written().count('"reason": "no_route"') == 3, written()[-2000:]


def test_a_room_full_of_the_largest_bodies_still_welcomes_its_clients(stack, login):
    """The welcome's history (50 bodies of 2,000 four-byte characters, ~400 KB) outgrows the incoming limit
    (64 KiB): daphne applied that limit to what it sends and closed the socket with 1011."""
    alice, bob = login("alice"), login("bob")
    room = room_name()
    body = "😀" * 2000
    for n in range(50):
        assert alice.post_message(room, body[:-1] + str(n % 10)).status_code == 201
    with bob.socket(room) as socket:
        assert len(socket.welcome["history"]) == 50
        socket.say("after the big welcome")
        assert socket.recv_message("after the big welcome")


def test_a_message_split_at_every_byte_boundary_is_reassembled(base_url, login):
    """One presence request cut into a TEXT and a CONT frame at each byte position, inside multi-byte characters
    too: each one answered (presence requests are not rate limited), on daphne and uvicorn."""
    from websockets.frames import Frame

    alice = login("alice")
    raw = RawSocket(base_url, room_name(), alice.cookie_header())
    data = json.dumps({"type": "presence", "note": "é😀ü"}, ensure_ascii=False).encode()
    for cut in range(len(data) + 1):
        raw.protocol.send_frame(Frame(Opcode.TEXT, data[:cut], fin=False))
        raw.protocol.send_frame(Frame(Opcode.CONT, data[cut:], fin=True))
        raw._flush()
        assert raw.recv_json(frame_type="presence")["users"] == ["alice"], cut
    raw.send_frame(Opcode.CLOSE, b"\x03\xe8")
    assert raw.close_code() == 1000


def test_binary_frame_gets_an_error_frame(base_url, login):
    mallory, bob = login("mallory"), login("bob")
    room = room_name()
    raw = RawSocket(base_url, room, mallory.cookie_header())
    with bystander_on(raw.welcome["worker"], bob, room) as bystander:
        raw.send_frame(Opcode.BINARY, b"\x00\x01\x02")
        assert raw.recv_json(frame_type="error")["code"] == "binary_frame"
        assert_bystander_works(bystander)


@pytest.mark.parametrize("origin", ["http://evil.example", None], ids=["foreign", "missing"])
def test_bad_origin_is_refused_with_403(base_url, login, origin):
    from websockets.sync.client import connect

    mallory, bob = login("mallory"), login("bob")
    room = room_name()
    with bob.socket(room) as bystander:
        headers = {"Cookie": mallory.cookie_header()}
        kwargs = {"origin": origin} if origin else {}
        with pytest.raises(InvalidStatus) as refused:
            with connect(mallory.ws_url(room), additional_headers=headers, open_timeout=10, **kwargs):
                pass
        assert refused.value.response.status_code == 403
        assert_bystander_works(bystander)


def test_no_session_and_expired_session_are_refused_with_403(stack, login):
    mallory, bob = login("mallory"), login("bob")
    room = room_name()
    with bob.socket(room) as bystander:
        with pytest.raises(InvalidStatus) as refused:
            with mallory.socket(room, cookie=False):
                pass
        assert refused.value.response.status_code == 403
        key = mallory.http.cookies["sessionid"]
        stack.manage("shell", "-c", (
            "from datetime import timedelta\n"
            "from django.contrib.sessions.models import Session\n"
            "from django.utils import timezone\n"
            f"Session.objects.filter(session_key={key!r}).update(expire_date=timezone.now() - timedelta(days=1))\n"
        ))
        with pytest.raises(InvalidStatus) as expired:
            with mallory.socket(room):
                pass
        assert expired.value.response.status_code == 403
        assert_bystander_works(bystander)


def test_non_member_of_a_private_room_is_closed_with_4403_and_gets_403_over_http(stack, base_url, login):
    room = room_name()
    stack.manage("private_room", room, "bob")
    mallory, bob = login("mallory"), login("bob")
    with bob.socket(room) as member:
        with pytest.raises(ConnectionClosed) as closed:
            with mallory.socket(room):
                pass
        assert closed.value.rcvd.code == 4403
        assert_bystander_works(member)
    assert mallory.http.get(f"{base_url}/api/rooms/{room}/messages", timeout=10).status_code == 403
    assert mallory.post_message(room, "let me in").status_code == 403
    assert mallory.http.get(f"{base_url}/chat/{room}/", timeout=10).status_code == 403


def test_flood_beyond_the_rate_limit_gets_error_frames_then_1008(login):
    """Default limits: 10 messages/s per connection; more than 10 refusals in a minute: 1008."""
    mallory, bob = login("mallory"), login("bob")
    room = room_name()
    with mallory.socket(room) as attacker, bystander_on(attacker.worker, bob, room) as bystander:
        for i in range(60):
            try:
                attacker.say(f"flood {i}")
            except ConnectionClosed:
                break
        codes = []
        # uvicorn finishes the closing handshake only after its close timeout
        # (10 s) when the flood filled its read queue; the 1008 frame is sent at once.
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = attacker.recv(timeout=30)
                codes.append(frame.get("code"))
        assert "rate_limited" in codes
        assert closed.value.rcvd.code == 1008
        assert_bystander_works(bystander)
    stored = [m for m in bob.messages_after(room) if m["user"] == "mallory"]
    assert 10 <= len(stored) < 60


def test_one_socket_more_than_the_cap_is_closed_with_1008(login):
    """Default cap: 20 sockets per user, across workers."""
    trudy, bob = login("trudy"), login("bob")
    room = room_name()
    with contextlib.ExitStack() as sockets:
        opened = [sockets.enter_context(trudy.socket(room)) for _ in range(20)]
        assert len({s.worker for s in opened}) == 2  # the cap counts sockets on both workers
        with pytest.raises(ConnectionClosed) as closed:
            with trudy.socket(room):
                pass
        assert closed.value.rcvd.code == 1008
        with bystander_on(opened[0].worker, bob, room) as bystander:
            assert_bystander_works(bystander)
    with trudy.socket(room) as again:  # closed sockets free their places
        assert again.welcome["type"] == "welcome"


def test_signing_out_closes_the_sessions_sockets_on_every_worker(base_url, login):
    carol = login("carol")
    room = room_name()
    with contextlib.ExitStack() as sockets:
        opened = [sockets.enter_context(carol.socket(room)) for _ in range(4)]
        assert len({s.worker for s in opened}) == 2
        carol.http.post(f"{base_url}/accounts/logout/", data={"csrfmiddlewaretoken": carol.csrf_token},
                        headers={"Referer": f"{base_url}/"}, timeout=10)
        for socket in opened:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    socket.recv(timeout=10)
            assert closed.value.rcvd.code == 4401
    with pytest.raises(InvalidStatus):  # and the old cookie opens nothing
        with carol.socket(room):
            pass


def test_security_headers_on_pages_and_static_files(base_url, login):
    import requests

    for response in (login("bob").http.get(f"{base_url}/chat/lobby/", timeout=10),
                     requests.get(f"{base_url}/static/chat/room.js", timeout=10)):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "same-origin"


@contextlib.contextmanager
def strict_front_door(stack, tmp_path, **limits):
    """A second nginx, rendered from nginx/ with tight limits, in front of the same workers."""
    import shutil
    import subprocess

    from deploy import nginx
    from tests.conftest import free_ports

    port = free_ports(1)[0]
    (tmp_path / "nginx-tmp").mkdir()
    nginx.render(
        tmp_path, main=True, run_dir=str(tmp_path), log_dir=str(tmp_path), listen=f"127.0.0.1:{port}",
        web_servers=[f"127.0.0.1:{stack.config.web_port}"],
        asgi_servers=[f"127.0.0.1:{p}" for p in stack.config.asgi_ports],
        static_root=str(stack.run_dir / "static"), run_as_user="root" if os.geteuid() == 0 else None, **limits,
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr",
                                "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 5)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_nginx_caps_open_sockets_per_address(stack, login, tmp_path):
    from tests.clients import ChatClient
    from tests.conftest import PASSWORDS

    with strict_front_door(stack, tmp_path, ws_conn_per_ip=3) as front:
        bob = ChatClient(front, "bob", PASSWORDS["bob"]).login()
        room = room_name()
        with contextlib.ExitStack() as sockets:
            for _ in range(3):
                sockets.enter_context(bob.socket(room))
            with pytest.raises(InvalidStatus) as refused:
                with bob.socket(room):
                    pass
            assert refused.value.response.status_code == 429
        with bob.socket(room) as again:  # closed sockets free their places
            assert again.welcome["type"] == "welcome"


def test_nginx_limits_the_handshake_rate_per_address(stack, login, tmp_path):
    from tests.clients import ChatClient
    from tests.conftest import PASSWORDS

    with strict_front_door(stack, tmp_path, ws_handshake_rate="1r/m", ws_handshake_burst=2) as front:
        bob = ChatClient(front, "bob", PASSWORDS["bob"]).login()
        statuses = []
        for _ in range(5):
            try:
                with bob.socket(room_name()):
                    statuses.append(101)
            except InvalidStatus as refused:
                statuses.append(refused.response.status_code)
        assert statuses[:3] == [101, 101, 101] and statuses[3:] == [429, 429]
