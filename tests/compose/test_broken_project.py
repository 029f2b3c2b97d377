"""A project that cannot start fails readable under compose.prod.yaml: the image
builds, ``up`` fails, the one-shot ``migrate`` service's preflight names the
cause in one line and exits 2, and web, asgi and nginx are never started (so
none of them restarts in a loop of tracebacks).

The project is tests/projects/broken_asgi: settings, URLs and WSGI load, but
``ASGI_APPLICATION`` names a module that does not exist."""

import time

import pytest

from tests.compose.conftest import prod_stack, require_docker

pytestmark = pytest.mark.compose

PREFLIGHT = "switchyard: the project cannot start: "


@pytest.fixture(scope="module")
def compose_broken(tmp_path_factory):
    require_docker()
    stack = prod_stack(tmp_path_factory.mktemp("compose-broken"), "broken", project="tests/projects/broken_asgi")
    stack.down()
    try:
        stack.compose("build")
        stack.result = stack.compose("up", "-d", check=False, timeout=300)
        yield stack
    finally:
        stack.down()


def test_up_fails_with_the_preflight_line_in_migrates_logs(compose_broken):
    assert compose_broken.result.returncode != 0, compose_broken.result.stdout + compose_broken.result.stderr
    logs = compose_broken.compose("logs", "--no-color", "migrate").stdout
    reasons = [line.split(PREFLIGHT, 1)[1] for line in logs.splitlines() if PREFLIGHT in line]
    assert reasons == ["ASGI_APPLICATION 'brokensite.routing.application' cannot be loaded: "
                       "ModuleNotFoundError: No module named 'brokensite.routing'"], logs
    assert "Traceback" not in logs
    (migrate,) = compose_broken.container_ids("migrate")
    assert compose_broken.state(migrate)[::2] == ("exited", 2)


def test_web_asgi_and_nginx_never_start(compose_broken):
    time.sleep(5)  # long enough for a restart policy to have shown itself
    for service in ("web", "asgi", "nginx"):
        for container in compose_broken.container_ids(service):
            status, restarts, _ = compose_broken.state(container)
            assert (status, restarts) == ("created", 0), f"{service}: {status}, {restarts} restarts"
