"""A project Switchyard never saw, deployed unmodified: the Channels tutorial's shape.

``tests/projects/tutorial`` is written the way the Channels tutorial writes a
project (hard-coded dev ``SECRET_KEY``, ``DEBUG = True``, ``ALLOWED_HOSTS =
[]``, ``CHANNEL_LAYERS`` at 127.0.0.1:6379, sync consumers with
``async_to_sync`` groups, an async consumer, a view that calls
``group_send``). Started through ``NativeStack`` with ``project=`` (what
``scripts/stack up --project DIR`` runs), it must serve on the split stack:
sockets spread over both workers, groups cross workers, gunicorn's view
reaches sockets, a foreign Origin is refused, and the deployment's settings
(not the tutorial's) are in force. Projects that cannot start stop the
launcher with one line naming the cause (issue #11, part 5).
"""

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from websockets.exceptions import InvalidStatus

from deploy.native import port_is_free
from tests.clients import json_socket
from tests.conftest import REPO, TUTORIAL_PROJECT, free_ports, native_stack, upgrades_by_worker

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def tutorial(request, tmp_path_factory):
    """The tutorial project on a running native stack (two workers of the given server)."""
    native = native_stack(tmp_path_factory.mktemp(f"tutorial-{request.param}"), TUTORIAL_PROJECT, request.param)
    native.start(timeout=90)
    try:
        yield native
    finally:
        native.stop()


def test_echo_consumer_answers_through_nginx(tutorial):
    with json_socket(tutorial.config.url, "/ws/echo/") as echo:
        echo.send({"hello": "switchyard"})
        assert echo.recv_until(lambda frame: True) == {"hello": "switchyard"}


def test_sync_and_async_group_consumers_cross_workers(tutorial):
    room = f"r{uuid.uuid4().hex[:8]}"
    before = {name: len(paths) for name, paths in upgrades_by_worker(tutorial).items()}
    paths = [f"/ws/chat/{room}/", f"/ws/achat/{room}/", f"/ws/chat/{room}/", f"/ws/achat/{room}/"]
    with json_socket(tutorial.config.url, paths[0]) as a, json_socket(tutorial.config.url, paths[1]) as b, \
            json_socket(tutorial.config.url, paths[2]) as c, json_socket(tutorial.config.url, paths[3]) as d:
        sockets = [a, b, c, d]
        # nginx's least_conn put them on both workers (each worker's connection log says so).
        after = upgrades_by_worker(tutorial)
        placed = {name: len(found) - before.get(name, 0) for name, found in after.items()}
        assert len(placed) == 2 and all(count >= 1 for count in placed.values()), placed
        for index, sender in enumerate(sockets):
            sender.send({"message": f"from {index}"})
            for receiver in sockets:
                receiver.recv_until(lambda frame, index=index: frame == {"message": f"from {index}"},
                                    what=f"message from socket {index}")


def test_a_view_on_gunicorn_pushes_to_sockets_on_both_workers(tutorial):
    room = f"r{uuid.uuid4().hex[:8]}"
    with json_socket(tutorial.config.url, f"/ws/chat/{room}/") as a, \
            json_socket(tutorial.config.url, f"/ws/achat/{room}/") as b:
        response = requests.post(f"{tutorial.config.url}/chat/{room}/push/", data={"message": "from gunicorn"},
                                 timeout=10)
        assert response.status_code == 200 and response.json() == {"pushed": True}
        for socket in (a, b):
            socket.recv_until(lambda frame: frame == {"message": "from gunicorn"}, what="the pushed message")


def test_a_foreign_origin_is_refused(tutorial):
    with pytest.raises(InvalidStatus) as refused:
        with json_socket(tutorial.config.url, "/ws/echo/", origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


def test_the_deployment_settings_replace_the_tutorials(tutorial):
    # DEBUG = True in the project; off on the stack: no URLconf listing in a 404.
    missing = requests.get(f"{tutorial.config.url}/no-such-page/", timeout=10)
    assert missing.status_code == 404 and "URLconf" not in missing.text
    # The database is the stack's (the run directory), not the project's db.sqlite3.
    assert (tutorial.run_dir / "db.sqlite3").exists()
    assert not (TUTORIAL_PROJECT / "db.sqlite3").exists()
    # The project's files are exactly as committed: nothing was edited or added.
    status = subprocess.run(["git", "status", "--porcelain", "--ignored", str(TUTORIAL_PROJECT)], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    assert [line for line in status.splitlines() if "__pycache__" not in line] == []


# --- Projects that cannot start ---------------------------------------------------------------


def broken_copy(tmp_path, edit):
    """Copy the tutorial project into ``tmp_path/project`` and apply ``edit(directory)``; return the directory."""
    directory = tmp_path / "project"
    shutil.copytree(TUTORIAL_PROJECT, directory, ignore=shutil.ignore_patterns("__pycache__"))
    edit(directory)
    return directory


def append(path, text):
    path.write_text(path.read_text() + text)


def drop_line(path, start):
    path.write_text("".join(line for line in path.read_text().splitlines(True) if not line.startswith(start)))


BROKEN = {
    "settings-import-error": (
        lambda d: append(d / "mysite" / "settings.py", "\nimport channels_redis_typo  # a typo\n"),
        "the project's settings cannot be loaded: ModuleNotFoundError: No module named 'channels_redis_typo' "
        "(mysite/settings.py, line",
    ),
    "no-asgi-application": (
        lambda d: drop_line(d / "mysite" / "settings.py", "ASGI_APPLICATION"),
        "the project's settings (mysite.settings) have no ASGI_APPLICATION",
    ),
    "route-module-raises": (
        lambda d: append(d / "chat" / "routing.py", "\nraise RuntimeError('routes are broken')\n"),
        "ASGI_APPLICATION 'mysite.asgi.application' cannot be loaded: RuntimeError: routes are broken "
        "(chat/routing.py, line",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_project_that_cannot_start_stops_the_launcher_with_one_line(case, tmp_path):
    edit, expected = BROKEN[case]
    project = broken_copy(tmp_path, edit)
    nginx, web, redis, asgi = free_ports(4)
    result = subprocess.run(
        [str(REPO / "scripts" / "stack"), "--run-dir", str(tmp_path / "run"), "up", "--project", str(project),
         "--port", str(nginx), "--web-port", str(web), "--redis-port", str(redis), "--asgi-base-port", str(asgi),
         "--asgi-workers", "1"],
        capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("switchyard: the project cannot start: "), output
    assert expected in errors[0], output
    assert "Traceback" not in output
    # Nothing was started: every port is still free, no supervisord config written.
    assert all(port_is_free("127.0.0.1", port) for port in (nginx, web, redis, asgi))
    assert not (Path(tmp_path) / "run" / "supervisord.conf").exists()


def test_a_directory_without_manage_py_is_refused_by_name(tmp_path):
    result = subprocess.run([str(REPO / "scripts" / "stack"), "--run-dir", str(tmp_path / "run"), "up",
                             "--project", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"switchyard: {tmp_path.resolve()} is not a Django project: it has no manage.py"


def test_settings_names_the_module_over_the_one_manage_py_sets(tmp_path):
    """``--settings MODULE`` wins over manage.py's: a module that does not exist stops the launch, named."""
    project = broken_copy(tmp_path, lambda directory: None)
    result = subprocess.run([str(REPO / "scripts" / "stack"), "--run-dir", str(tmp_path / "run"), "up",
                             "--project", str(project), "--settings", "mysite.settings_live"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("switchyard: the project cannot start: "), errors
    assert "the project's settings module 'mysite.settings_live' cannot be imported" in errors[0], errors
    assert not (tmp_path / "run" / "supervisord.conf").exists()
