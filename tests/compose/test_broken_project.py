"""A project that cannot start fails readable under compose.prod.yaml: the image
builds, ``up`` fails, the one-shot ``migrate`` service's preflight names the
cause in one line and exits 2, and web, asgi and nginx are never started (so
none of them restarts in a loop of tracebacks).

The project is tests/projects/broken_asgi, built once; each case is one of its
settings modules (the one its manage.py sets, or one named by
``SWITCHYARD_PROJECT_SETTINGS`` in the env file):
an ASGI application that cannot be imported, no ``ASGI_APPLICATION``, and a
route module that raises (issue #11, part 5)."""

import time

import pytest

from tests.compose.conftest import prod_stack, require_docker

pytestmark = pytest.mark.compose

PREFLIGHT = "switchyard: the project cannot start: "

CASES = {
    "brokensite.settings": "ASGI_APPLICATION 'brokensite.routing.application' cannot be loaded: "
                           "ModuleNotFoundError: No module named 'brokensite.routing'",
    "brokensite.settings_no_asgi": "the project's settings (brokensite.settings_no_asgi) have no ASGI_APPLICATION: "
                                   "add ASGI_APPLICATION = \"<project>.asgi.application\" (Channels' installation docs)",
    "brokensite.settings_raising_routes": "ASGI_APPLICATION 'brokensite.raising_asgi.application' cannot be loaded: "
                                          "RuntimeError: routes are broken (brokensite/raising_routing.py, line 1)",
}


@pytest.fixture(scope="module")
def compose_broken(tmp_path_factory):
    """compose.prod.yaml with tests/projects/broken_asgi, its images built, not started."""
    require_docker()
    stack = prod_stack(tmp_path_factory.mktemp("compose-broken"), "broken", project="tests/projects/broken_asgi")
    stack.down()
    stack.base_env = stack.env_file.read_text()
    try:
        stack.compose("build")
        yield stack
    finally:
        stack.down()


@pytest.mark.parametrize("settings", sorted(CASES))
def test_up_fails_with_the_preflight_line_and_nothing_else_starts(compose_broken, settings):
    compose_broken.down()
    # brokensite.settings is the one manage.py sets: left unset, the runtime finds it there.
    chosen = "" if settings == "brokensite.settings" else f"SWITCHYARD_PROJECT_SETTINGS={settings}\n"
    compose_broken.env_file.write_text(compose_broken.base_env + chosen)
    result = compose_broken.compose("up", "-d", check=False, timeout=300)
    assert result.returncode != 0, result.stdout + result.stderr

    logs = compose_broken.compose("logs", "--no-color", "migrate").stdout
    reasons = [line.split(PREFLIGHT, 1)[1] for line in logs.splitlines() if PREFLIGHT in line]
    assert reasons == [CASES[settings]], logs
    assert "Traceback" not in logs
    (migrate,) = compose_broken.container_ids("migrate")
    assert compose_broken.state(migrate)[::2] == ("exited", 2)

    time.sleep(3)  # long enough for a restart policy to have shown itself
    for service in ("web", "asgi", "nginx"):
        for container in compose_broken.container_ids(service):
            status, restarts, _ = compose_broken.state(container)
            assert (status, restarts) == ("created", 0), f"{service}: {status}, {restarts} restarts"
