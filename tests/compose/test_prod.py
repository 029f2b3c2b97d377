"""compose.prod.yaml on a real Docker engine, over TLS: the native stack tests
against it, HTTP redirected to HTTPS, Redis and PostgreSQL unreachable from the
host, the image's own checks, and a clean ``down -v``."""

import socket
import subprocess

import psycopg
import pytest
import redis
import requests

from tests.compose.conftest import login_fixture
from tests.stack.test_chat import (  # noqa: F401 - the same tests, against this stack
    test_api_post_reaches_sockets_on_both_workers,
    test_bad_input_gets_an_error_frame_and_the_socket_lives,
    test_foreign_origin_is_refused_with_403,
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


@pytest.fixture(autouse=True)
def trust_the_test_certificate(compose_prod, monkeypatch):
    """Plain ``requests`` calls in the shared tests verify against the self-signed pair."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", compose_prod.verify)


@pytest.fixture
def base_url(compose_prod):
    return compose_prod.base_url


@pytest.fixture
def login(compose_prod):
    return login_fixture(compose_prod)


def test_plain_http_redirects_to_https(compose_prod):
    response = requests.get(f"http://127.0.0.1:{compose_prod.http_port}/chat/lobby/?x=1", allow_redirects=False,
                            timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"{compose_prod.base_url}/chat/lobby/?x=1"


def test_session_cookie_is_secure_and_hsts_is_sent(compose_prod, login):
    alice = login("alice")
    assert all(cookie.secure for cookie in alice.http.cookies if cookie.name in ("sessionid", "csrftoken"))
    page = alice.http.get(f"{compose_prod.base_url}/chat/lobby/", timeout=10)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_only_nginx_publishes_ports(compose_prod):
    for service in ("redis", "db", "web", "asgi"):
        result = compose_prod.compose("port", service, {"redis": "6379", "db": "5432"}.get(service, "8000"), check=False)
        assert result.stdout.strip() in ("", ":0"), f"{service} publishes {result.stdout!r}"


def test_redis_and_postgres_refuse_the_host(compose_prod):
    """From the host, neither this stack's Redis nor its PostgreSQL answers on any local address."""
    with pytest.raises((redis.ConnectionError, redis.AuthenticationError, redis.ResponseError)):
        redis.Redis(host="127.0.0.1", port=6379, password="redis-compose-test-secret", socket_timeout=3).ping()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=5432, user="switchyard", password="pg-compose-test-secret",
                        dbname="switchyard", connect_timeout=3)


def test_redis_requires_its_password_inside_the_network(compose_prod):
    probe = ("import redis, sys\n"
             "try:\n    redis.Redis(host='redis').ping()\nexcept redis.AuthenticationError:\n    print('NOAUTH')\n")
    output = compose_prod.compose("exec", "-T", "web", "python", "-c", probe).stdout
    assert "NOAUTH" in output


def test_image_runs_as_non_root_and_passes_check_deploy(compose_prod):
    assert compose_prod.compose("exec", "-T", "web", "id", "-u").stdout.strip() == "10001"
    result = compose_prod.manage("check", "--deploy", "--fail-level", "WARNING", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_is_installed_in_the_image_not_mounted(compose_prod):
    """The image carries the runtime as an installed package (from the lock) and the project in /app."""
    probe = "import switchyard, chatsite; print(switchyard.__file__, chatsite.__file__)"
    runtime, project = compose_prod.compose("exec", "-T", "web", "python", "-c", probe).stdout.split()
    assert runtime.startswith("/opt/venv/lib/") and project == "/app/chatsite/__init__.py"


def test_down_leaves_nothing_running(compose_prod):
    compose_prod.down()
    assert compose_prod.container_ids() == []
    for kind in ("volume", "network"):
        listed = subprocess.run(["docker", kind, "ls", "-q", "--filter",
                                 f"label=com.docker.compose.project={compose_prod.project}"],
                                capture_output=True, text=True, check=True).stdout.split()
        assert listed == [], f"{kind}s left: {listed}"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(compose_prod.base_url.rsplit(":", 1)[1])), timeout=3).close()
