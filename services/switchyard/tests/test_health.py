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
