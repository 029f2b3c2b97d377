"""The HTTP side through nginx: health, pages, static files, sign-in, the API."""

import pytest
import requests

from tests.clients import ChatClient


def test_healthz_answers_from_gunicorn_through_nginx(base_url):
    response = requests.get(f"{base_url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    assert response.headers["Server"].startswith("nginx")


def test_room_page_needs_sign_in_then_renders(base_url, login):
    anonymous = requests.get(f"{base_url}/chat/lobby/", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/accounts/login/")
    page = login("alice").http.get(f"{base_url}/chat/lobby/", timeout=10)
    assert page.status_code == 200
    assert 'data-room="lobby"' in page.text and "/static/chat/room.js" in page.text


def test_static_files_come_from_disk_not_python(stack, base_url):
    response = requests.get(f"{base_url}/static/chat/room.js", timeout=10)
    assert response.status_code == 200
    assert "new WebSocket" in response.text
    assert "Cache-Control" in response.headers  # nginx's `expires`, not Django
    gunicorn_log = (stack.log_dir / "web.log").read_text()
    assert "/static/chat/room.js" not in gunicorn_log


def test_wrong_password_does_not_sign_in(base_url):
    client = ChatClient(base_url, "alice", "not-her-password")
    with pytest.raises(AssertionError, match="sign-in as alice failed"):
        client.login()
    assert "sessionid" not in client.http.cookies


def test_api_history_after_an_offset(login):
    alice = login("alice")
    first = alice.post_message("api-history", "one").json()
    alice.post_message("api-history", "two")
    alice.post_message("api-history", "three")
    assert [m["body"] for m in alice.messages_after("api-history", first["offset"])] == ["two", "three"]


def test_api_post_without_csrf_is_refused(base_url, login):
    alice = login("alice")
    response = alice.http.post(f"{base_url}/api/rooms/lobby/messages", json={"body": "no token"}, timeout=10)
    assert response.status_code == 403
    assert all(m["body"] != "no token" for m in alice.messages_after("lobby"))
