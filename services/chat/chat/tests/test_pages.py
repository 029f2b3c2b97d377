import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_room_page_needs_sign_in():
    response = Client().get("/chat/lobby/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/chat/lobby/"


def test_room_page_renders_the_client(alice):
    client = Client()
    client.force_login(alice)
    page = client.get("/chat/lobby/").content.decode()
    assert 'data-room="lobby"' in page and "chat/room.js" in page and 'id="state"' in page
    assert "csrftoken" in client.cookies


def test_index_redirects_to_a_valid_room_and_rejects_bad_names(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/", {"room": "team-1"})["Location"] == "/chat/team-1/"
    assert "Room names use" in client.get("/", {"room": "no spaces"}).content.decode()


def test_login_page_is_django_auth():
    assert Client().get("/accounts/login/").status_code == 200
