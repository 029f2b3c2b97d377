"""examples/liveboard, a plain Channels project, deployed unmodified by compose.prod.yaml
(``SWITCHYARD_PROJECT=examples/liveboard``, built into the image) over TLS with two
ASGI replicas: the shared liveboard tests against it, its own static files from
nginx, and ``check --deploy`` in its image."""

import contextlib
import json
import subprocess

import pytest
import requests

from tests.clients import json_socket
from tests.compose.conftest import prod_stack, require_docker, running
from tests.stack.test_liveboard import (  # noqa: F401 - the same tests, against this stack
    test_liveboard_foreign_origin_is_refused,
    test_liveboard_positions_reach_every_socket,
    test_liveboard_readings_over_http_and_websocket_reach_dashboards,
)

pytestmark = pytest.mark.compose


@pytest.fixture(scope="module")
def compose_liveboard(tmp_path_factory):
    require_docker()
    stack = prod_stack(tmp_path_factory.mktemp("compose-liveboard"), "liveboard", project="examples/liveboard")
    yield from running(stack, users=False)


@pytest.fixture(autouse=True)
def trust_the_test_certificate(compose_liveboard, monkeypatch):
    """Plain ``requests`` calls and ``json_socket`` in the shared tests verify against the self-signed pair."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", compose_liveboard.verify)


@pytest.fixture
def base_url(compose_liveboard):
    return compose_liveboard.base_url


def test_the_projects_static_files_come_from_nginx(compose_liveboard):
    response = requests.get(f"{compose_liveboard.base_url}/static/location/map.js", timeout=10)
    assert response.status_code == 200 and "WebSocket" in response.text


def test_the_project_runs_from_the_image_and_passes_check_deploy(compose_liveboard):
    where = compose_liveboard.manage("shell", "-v", "0", "-c", "from django.conf import settings; "
                                     "print(settings.PROJECT_SETTINGS, settings.PROJECT_DIR)").stdout.split()
    assert where == ["liveboard.settings", "/app"]
    result = compose_liveboard.manage("check", "--deploy", "--fail-level", "WARNING", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def location_upgrades(stack):
    """``{container id: count}`` of ``/ws/location/`` upgrades in each asgi replica's connection log."""
    counts = {}
    for container in stack.container_ids("asgi"):
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=True)
        records = [json.loads(line) for line in (logs.stdout + logs.stderr).splitlines()
                   if line.startswith("{") and '"upgrade"' in line]
        counts[container] = sum(1 for record in records if record.get("path") == "/ws/location/")
    return counts


def test_sockets_spread_over_both_replicas_and_positions_cross_them(compose_liveboard):
    before = location_upgrades(compose_liveboard)
    names = [f"c{index}" for index in range(4)]
    with contextlib.ExitStack() as opened:
        sockets = [opened.enter_context(json_socket(compose_liveboard.base_url, "/ws/location/")) for _ in names]
        for socket in sockets:
            socket.recv_until(lambda frame: frame.get("type") == "hello", what="hello")
        placed = {container: count - before.get(container, 0)
                  for container, count in location_upgrades(compose_liveboard).items()}
        assert len(placed) == 2 and all(count >= 1 for count in placed.values()), placed
        for name, socket in zip(names, sockets):
            socket.send({"type": "position", "name": name, "lat": 1.0, "lon": 2.0})
        for socket in sockets:
            seen = set()
            while seen != set(names):
                seen.add(socket.recv_until(lambda frame: frame.get("name") in set(names) - seen,
                                           what="the other replicas' positions")["name"])
