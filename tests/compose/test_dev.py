"""compose.dev.yaml on a real Docker engine: the native stack tests against it,
scaling the ASGI replicas up and down under live sockets, and a clean ``down -v``."""

import contextlib
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.compose.conftest import login_fixture
from tests.stack.test_chat import (  # noqa: F401 - the same tests, against this stack
    test_api_post_reaches_sockets_on_both_workers,
    test_bad_input_gets_an_error_frame_and_the_socket_lives,
    test_foreign_origin_is_refused_with_403,
    test_joining_during_a_flood_loses_and_repeats_nothing,
    test_message_crosses_workers,
    test_reconnect_recovers_what_was_missed,
    test_socket_without_session_is_refused_with_403,
)
from tests.stack.test_http import (  # noqa: F401
    test_api_history_after_an_offset,
    test_api_post_without_csrf_is_refused,
    test_healthz_answers_from_gunicorn_through_nginx,
    test_room_page_needs_sign_in_then_renders,
    test_wrong_password_does_not_sign_in,
)

pytestmark = pytest.mark.compose


@pytest.fixture
def base_url(compose_dev):
    return compose_dev.base_url


@pytest.fixture
def login(compose_dev):
    return login_fixture(compose_dev)


def test_static_files_come_from_nginx(compose_dev):
    import requests

    response = requests.get(f"{compose_dev.base_url}/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200 and "Cache-Control" in response.headers
    assert "new WebSocket" in requests.get(f"{compose_dev.base_url}/static/chat/room.js", timeout=10).text


def test_the_checkout_is_mounted_over_the_app_dir(compose_dev):
    """gunicorn (GUNICORN_RELOAD) and uvicorn (--reload) run the project from the checkout, so edits reload them."""
    import json
    import subprocess

    from tests.compose.conftest import REPO

    for service in ("web", "asgi"):
        container = compose_dev.container_ids(service)[0]
        mounts = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .Mounts}}", container],
                                           capture_output=True, text=True, check=True).stdout)
        sources = [mount["Source"] for mount in mounts if mount["Destination"] == "/app"]
        assert sources == [str(REPO / "services" / "chat")], mounts


def test_scale_asgi_to_three_then_back_to_one(compose_dev, login):
    alice = login("alice")
    room = "scaling"
    compose_dev.compose("up", "-d", "--no-recreate", "--scale", "asgi=3")
    with contextlib.ExitStack() as sockets:
        by_worker = {}
        deadline = time.monotonic() + 90  # replicas start, then nginx re-resolves "asgi" (valid=5s)
        while len(by_worker) < 3:
            assert time.monotonic() < deadline, f"new sockets reached only {sorted(by_worker)}"
            socket = sockets.enter_context(alice.socket(room))
            by_worker.setdefault(socket.worker, socket)
            time.sleep(0.3)
        first, *others = by_worker.values()
        first.say("across three replicas")
        for socket in others:
            assert socket.recv_message("across three replicas")["user"] == "alice"

        survivor_host = compose_dev.hostname(f"{compose_dev.project}_asgi_1")
        compose_dev.compose("up", "-d", "--no-recreate", "--scale", "asgi=1")
        survivor = next(s for w, s in by_worker.items() if w.startswith(survivor_host + ":"))
        for worker, socket in by_worker.items():
            if socket is not survivor:  # drained by the removed replica
                assert close_code(socket, timeout=30) == 1012, worker
        survivor.say("still here after scaling down")
        assert survivor.recv_message("still here after scaling down")["user"] == "alice"
    assert len(compose_dev.container_ids("asgi")) == 1


def close_code(socket, timeout):
    """Read (and drop) frames until the server closes ``socket``; return the close code it sent."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            socket.recv(timeout=max(0.1, deadline - time.monotonic()))
    return closed.value.rcvd.code if closed.value.rcvd else 1006


def test_down_leaves_nothing_running(compose_dev):
    compose_dev.down()
    assert compose_dev.container_ids() == []
    import subprocess

    for kind in ("volume", "network"):
        listed = subprocess.run(["docker", kind, "ls", "-q", "--filter", f"label=com.docker.compose.project={compose_dev.project}"],
                                capture_output=True, text=True, check=True).stdout.split()
        assert listed == [], f"{kind}s left: {listed}"
