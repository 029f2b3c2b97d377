"""examples/liveboard, a plain Channels project, deployed unmodified by the app
role of the ``single`` Molecule scenario (``app_project_dir:
examples/liveboard``): the shared liveboard tests through server1's nginx over
HTTPS, its own static files from nginx, the deployment checks on the host,
then ``deploy.yml`` with the project from a git repository (URL, version,
subdirectory) and with a project that cannot start (the play stops with the
preflight's one line; the running release keeps serving).

Run by ansible/molecule/single/verify.yml only (the default scenario deploys
the chat example and runs test_site.py).
"""

import contextlib
import json
import shutil
import subprocess
import uuid

import pytest
import requests

from tests.ansible.conftest import first_handshake
from tests.clients import json_socket
from tests.conftest import FIGURES, LIVEBOARD_PROJECT
from tests.stack.test_your_project import append, drop_line
from tests.stack.test_liveboard import (  # noqa: F401 - the same tests, against server1
    test_liveboard_foreign_origin_is_refused,
    test_liveboard_positions_reach_every_socket,
    test_liveboard_readings_over_http_and_websocket_reach_dashboards,
)

pytestmark = pytest.mark.ansible


@pytest.fixture(scope="module", autouse=True)
def warmed_up(site):
    """One location socket through server1 before the tests (tests.ansible.conftest.first_handshake)."""
    with pytest.MonkeyPatch.context() as patch:  # as trust_the_load_balancer does for each test
        patch.setenv("REQUESTS_CA_BUNDLE", site.verify)
        FIGURES.append(first_handshake(lambda: json_socket(site.base_url, "/ws/location/", verify=site.verify)))

# What the role leaves out of a packed project (app_project_exclude's usual suspects).
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.sqlite3*", "staticfiles", ".venv")


def on_host(site, *argv):
    """Run ``argv`` on the app host; return its stdout (str), or fail with its output."""
    result = site.command(site.app_hosts[0], *argv)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result.stdout


def current_release(site):
    """Return ``(release directory, release.json as a dict)`` of the current release on the app host."""
    target = on_host(site, "readlink", "-f", "/srv/switchyard/current").strip()
    return target, json.loads(on_host(site, "cat", f"{target}/release.json"))


def deploy(site, *extra_vars):
    """Run ``deploy.yml -e VAR...`` (results as JSON, one line each); return the CompletedProcess."""
    args = [arg for var in extra_vars for arg in ("-e", var)]
    return site.ansible("ansible-playbook", "deploy.yml", *args, env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})


def git(*args, cwd):
    """Run ``git ARGS`` in ``cwd``; return its stdout, stripped."""
    return subprocess.run(["git", "-c", "user.name=Switchyard tests", "-c", "user.email=tests@switchyard.invalid", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_the_projects_static_files_come_from_nginx(site):
    response = requests.get(f"{site.base_url}/static/location/map.js", timeout=10)
    assert response.status_code == 200 and "WebSocket" in response.text
    assert response.headers["Expires"]  # nginx's `expires 1h`: served from disk, not by Django


def test_the_release_is_the_project_directory_and_passes_check_deploy(site):
    directory, record = current_release(site)
    assert record["project"]["source"] == "examples/liveboard" and record["runtime"]["tree"]
    assert directory.rsplit("/", 1)[1] == record["release"]
    checks = site.command(site.app_hosts[0], "switchyard-manage", "check", "--deploy", "--fail-level", "WARNING")
    assert checks.returncode == 0, checks.stdout + checks.stderr


def location_upgrades(site):
    """``{unit: count}`` of ``/ws/location/`` upgrades in each running ``asgi@PORT`` unit's journal (its connection log)."""
    units = [name for name in on_host(site, "systemctl", "list-units", "asgi@*", "--plain", "--no-legend",
                                      "--state=running").split() if name.startswith("asgi@")]
    counts = {}
    for unit in units:
        lines = on_host(site, "journalctl", "-u", unit, "-o", "cat", "--no-pager").splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{") and '"upgrade"' in line]
        counts[unit] = sum(1 for record in records if record.get("path") == "/ws/location/")
    return counts


def test_sockets_spread_over_every_asgi_worker_and_positions_cross_them(site):
    before = location_upgrades(site)
    assert len(before) == 2, before  # defaults.env's ASGI_WORKERS
    names = [f"w{index}-{uuid.uuid4().hex[:6]}" for index in range(4)]
    with contextlib.ExitStack() as opened:
        sockets = [opened.enter_context(json_socket(site.base_url, "/ws/location/")) for _ in names]
        for socket in sockets:
            socket.recv_until(lambda frame: frame.get("type") == "hello", what="hello")
        placed = {unit: count - before.get(unit, 0) for unit, count in location_upgrades(site).items()}
        assert sorted(placed) == sorted(before) and all(count >= 1 for count in placed.values()), placed
        for name, socket in zip(names, sockets):
            socket.send({"type": "position", "name": name, "lat": 1.0, "lon": 2.0})
        for socket in sockets:
            seen = set()
            while seen != set(names):
                frame = socket.recv_until(lambda frame: frame.get("name") in set(names) - seen,
                                          what="every worker's positions")
                seen.add(frame["name"])


def test_a_project_from_git_at_a_version_and_subdirectory(site, tmp_path):
    repository = tmp_path / "liveboard.git"
    shutil.copytree(LIVEBOARD_PROJECT, repository / "site", ignore=JUNK)
    (repository / "README").write_text("the project is in site/\n")
    run = uuid.uuid4().hex  # a new project content, so a new release, on every run
    (repository / "site" / "VERSION").write_text(f"first {run}\n")
    git("init", "-q", "-b", "main", cwd=repository)
    git("add", "-A", cwd=repository)
    git("commit", "-q", "-m", "first", cwd=repository)
    first = git("rev-parse", "HEAD", cwd=repository)
    (repository / "site" / "VERSION").write_text(f"second {run}\n")
    git("commit", "-q", "-am", "second", cwd=repository)

    result = deploy(site, f"app_project_git_url=file://{repository}", f"app_project_version={first}",
                    "app_project_subdir=site")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    directory, record = current_release(site)
    assert record["project"] == {"source": f"file://{repository}", "version": first, "commit": first, "subdir": "site",
                                 "digest": record["project"]["digest"], "settings": ""}
    assert on_host(site, "cat", f"{directory}/project/VERSION").strip() == f"first {run}"
    assert ".git" not in on_host(site, "ls", "-a", f"{directory}/project").split()
    posted = requests.post(f"{site.base_url}/api/readings/", json={"sensor": "git.deploy", "value": 1}, timeout=10)
    assert posted.status_code == 202, posted.text


# The three ways a project cannot start (issue: an import error in its settings, no
# ASGI_APPLICATION, a route module that raises), each with the preflight's one line.
BROKEN = {
    "settings-import-error": (
        lambda d: append(d / "liveboard" / "settings.py", "\nimport channels_redis_typo  # a typo\n"),
        "switchyard: the project cannot start: the project's settings cannot be loaded: ModuleNotFoundError: "
        "No module named 'channels_redis_typo' (liveboard/settings.py, line ",
    ),
    "no-asgi-application": (
        lambda d: drop_line(d / "liveboard" / "settings.py", "ASGI_APPLICATION"),
        "switchyard: the project cannot start: the project's settings (liveboard.settings) have no ASGI_APPLICATION",
    ),
    "route-module-raises": (
        lambda d: (d / "location" / "routing.py").write_text(
            'raise RuntimeError("routes are broken")\n' + (d / "location" / "routing.py").read_text()),
        "switchyard: the project cannot start: ASGI_APPLICATION 'liveboard.asgi.application' cannot be loaded: "
        "RuntimeError: routes are broken (location/routing.py, line 1)",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_project_that_cannot_start_stops_the_deploy_with_one_line(site, tmp_path, case):
    break_it, message = BROKEN[case]
    broken = tmp_path / "broken"
    shutil.copytree(LIVEBOARD_PROJECT, broken, ignore=JUNK)
    break_it(broken)
    before, _ = current_release(site)

    result = deploy(site, f"app_project_dir={broken}")
    assert result.returncode != 0
    output = result.stdout + result.stderr  # failures go to stderr with display_failed_stderr (Molecule's)
    failures = [json.loads(line.split("=> ", 1)[1]) for line in output.splitlines() if "FAILED! =>" in line]
    assert len(failures) == 1 and failures[0]["msg"].startswith(message), output[-4000:]
    assert "\n" not in failures[0]["msg"] and "Traceback" not in output
    # Nothing was switched or restarted: the running release still serves.
    assert current_release(site)[0] == before
    assert requests.get(f"{site.base_url}/healthz", timeout=10).status_code == 200
