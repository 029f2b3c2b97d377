import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client

from chat import messages

pytestmark = pytest.mark.django_db
URL = "/api/rooms/lobby/messages"


@pytest.fixture
def signed_in(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/chat/lobby/")  # sets the csrftoken cookie, like the room page does
    return client


def post(client, payload, csrf=True):
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value} if csrf else {}
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.post(URL, body, content_type="application/json", headers=headers)


def test_post_stores_and_pushes_to_the_room_group(signed_in):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(messages.group_name("lobby"), channel)
    response = post(signed_in, {"body": "from http"})
    assert response.status_code == 201
    answer = response.json()
    assert (answer["room"], answer["user"], answer["body"], answer["delivery"]) == ("lobby", "alice", "from http", "live")
    assert answer["offset"] == 1 and answer["epoch"]
    event = async_to_sync(layer.receive)(channel)
    message = {k: v for k, v in answer.items() if k != "delivery"}
    stored = event.pop("stored")  # Unix time of the commit, for the delivery-latency metric
    text = json.dumps({"type": "message", **message})
    assert event == {"type": "chat.message", "message": message, "text": text,
                     "frame": b"\x81\x7e" + len(text).to_bytes(2, "big") + text.encode(), "frame_bytes": len(text)}
    assert abs(time.time() - stored) < 60


def test_post_without_csrf_token_is_forbidden(signed_in):
    assert post(signed_in, {"body": "x"}, csrf=False).status_code == 403
    assert messages.messages_page("lobby") == []


def test_anonymous_gets_401(db):
    client = Client()
    assert client.get(URL).status_code == 401
    assert client.post(URL, "{}", content_type="application/json").status_code == 401


@pytest.mark.parametrize(
    ("payload", "code"),
    [("{bad", "invalid_json"), ("[1]", "invalid_frame"), ({"body": ""}, "empty_body"), ({"body": "x" * 2001}, "body_too_long")],
)
def test_bad_bodies_get_400_and_store_nothing(signed_in, payload, code):
    response = post(signed_in, payload)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert messages.messages_page("lobby") == []


def test_get_after_pages_by_offset(signed_in, alice, settings):
    stored = [messages.store_message("lobby", alice, f"m{i}") for i in range(4)]
    assert [m["offset"] for m in stored] == [1, 2, 3, 4]
    response = signed_in.get(URL, {"after": 1})
    assert [m["body"] for m in response.json()["messages"]] == ["m1", "m2", "m3"]
    settings.CHAT_API_PAGE_LIMIT = 2
    assert [m["offset"] for m in signed_in.get(URL, {"after": 0}).json()["messages"]] == [1, 2]
    assert [m["offset"] for m in signed_in.get(URL, {"after": 2}).json()["messages"]] == [3, 4]
    assert signed_in.get(URL, {"after": "x"}).status_code == 400


def test_unknown_room_reads_empty(signed_in):
    assert signed_in.get("/api/rooms/nobody-here/messages").json() == {"messages": []}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 100000, "invalid_json"),
        (b'{"body": "\\ud800"}', "invalid_text"),
        (b'{"body": "x\\u0000y"}', "invalid_text"),
    ],
)
def test_hostile_bodies_get_400_with_their_code(signed_in, body, code):
    response = post(signed_in, body.decode())
    assert response.status_code == 400
    assert response.json()["code"] == code
