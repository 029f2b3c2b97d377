import pytest
from django.test import Client


@pytest.mark.django_db
def test_healthz_is_503_while_redis_is_down():
    # settings_test points REDIS_URL at a port where nothing listens.
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"


@pytest.mark.django_db
def test_healthz_answers_probes_by_ip_address(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    assert Client(HTTP_HOST="10.1.2.3:8000").get("/healthz").status_code == 503  # answered, not 400
    assert Client(HTTP_HOST="10.1.2.3:8000").get("/accounts/login/").status_code == 400
