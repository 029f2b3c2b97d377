"""Fixtures of the compose tests: the dev and prod compose stacks on a real Docker engine.

Each stack is brought up once per module with ``docker-compose`` (Compose 1.29
here; the files also suit Compose v2) under its own project name, with the
image references from the environment (``../shared/offline-images/build
--env`` on machines without a registry, see ``scripts/test --compose``), and
torn down with ``down -v`` at the end. Tests talk to nginx's published ports
only, through the same clients as the native stack tests. Prod stacks build
their own image tags (``switchyard-test-<name>-app``, ``-nginx``), so a run
never replaces a deployment's ``switchyard-app:latest``; ``SWITCHYARD_PROJECT``
picks the project (the chat example unless a fixture names another).
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.clients import ChatClient
from tests.conftest import CREATE_USERS, OUTPUT_DIR, PASSWORDS, free_ports

REPO = Path(__file__).resolve().parent.parent.parent
COMPOSE = shutil.which("docker-compose") and ["docker-compose"] or ["docker", "compose"]
# Compose variables a developer's shell or the repository's .env may set, pinned so
# that every stack builds the project its fixture names with defaults.env's prefixes.
PINNED = {"SWITCHYARD_PROJECT": "services/chat", "WEBSOCKET_PATH_PREFIXES": ""}


class ComposeStack:
    """One compose project: ``compose_file`` (a name, or a list of names: a file and its overrides) under ``project``.

    ``env`` (dict) is for interpolation.
    """

    def __init__(self, compose_file, project, env, base_url, verify=True, env_file=None):
        self.compose_file, self.project, self.base_url, self.verify = compose_file, project, base_url, verify
        self.env = {**os.environ, **env}
        self.env_file = env_file

    def compose(self, *args, check=True, timeout=600):
        """Run ``docker-compose -f FILE -p PROJECT ARGS``; return the CompletedProcess (text)."""
        files = [self.compose_file] if isinstance(self.compose_file, str) else self.compose_file
        command = [*COMPOSE, *(["--env-file", str(self.env_file)] if self.env_file else []),
                   *(arg for name in files for arg in ("-f", str(REPO / name))), "-p", self.project, *args]
        result = subprocess.run(command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def up(self, *args):
        """``up -d`` (plus ``args``) and wait until ``/healthz`` answers 200 through nginx."""
        self.compose("up", "-d", *args)
        self.wait_healthy()

    def wait_healthy(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=5, verify=self.verify).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        logs = self.compose("logs", "--tail", "40", check=False).stdout
        raise AssertionError(f"{self.project} not healthy after {timeout}s:\n{logs}")

    def manage(self, *args, check=True):
        """Run ``python -m django ARGS`` in the web container; return the CompletedProcess (text)."""
        return self.compose("exec", "-T", "web", "python", "-m", "django", *args, check=check)

    def create_users(self):
        """Create the test users (``tests.conftest.PASSWORDS``) in the stack's database."""
        self.manage("shell", "-c", CREATE_USERS)

    def state(self, container_id):
        """Return ``(status, restart count, exit code)`` of a container: (str, int, int)."""
        result = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
                                 container_id], capture_output=True, text=True, check=True)
        status, restarts, exit_code = result.stdout.split()
        return status, int(restarts), int(exit_code)

    def container_ids(self, service=None):
        """Return the ids (list of str) of the project's containers, all or one service's, running or not."""
        labels = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            labels += ["--filter", f"label=com.docker.compose.service={service}"]
        result = subprocess.run(["docker", "ps", "-aq", *labels], capture_output=True, text=True, check=True)
        return result.stdout.split()

    def hostname(self, container_id):
        """The hostname of a container (what ``worker_id()`` reports inside it)."""
        result = subprocess.run(["docker", "inspect", "-f", "{{.Config.Hostname}}", container_id],
                                capture_output=True, text=True, check=True)
        return result.stdout.strip()

    def down(self):
        self.compose("down", "-v", "--remove-orphans", check=False)


def require_docker():
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise RuntimeError("no Docker engine: run the compose tests with `scripts/test --compose`")


# The stacks up at this moment: a failing test leaves their logs in var/test-output.
RUNNING = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """After a failed test, write ``compose logs`` of every running stack to ``var/test-output/compose-*.log``."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and RUNNING:
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        for stack in RUNNING:
            logs = stack.compose("logs", "--no-color", "--timestamps", "--tail", "400", check=False, timeout=60)
            path = OUTPUT_DIR / f"compose-{stack.project}-{item.name}.log"
            path.write_text(logs.stdout + logs.stderr)
            report.sections.append(("compose logs", f"written to {path}"))


def running(stack, users=True):
    """Build and start ``stack`` with two ASGI replicas (and the test users); yield it; ``down -v`` at the end."""
    stack.down()
    RUNNING.append(stack)
    try:
        stack.compose("build")
        stack.up("--scale", "asgi=2")
        if users:
            stack.create_users()
        yield stack
    finally:
        RUNNING.remove(stack)
        stack.down()


@pytest.fixture(scope="module")
def compose_dev():
    """compose.dev.yaml with two ASGI replicas, on a free port."""
    require_docker()
    port = free_ports(1)[0]
    stack = ComposeStack("compose.dev.yaml", "switchyard-test-dev", {"HTTP_PORT": str(port), **PINNED},
                         f"http://127.0.0.1:{port}")
    yield from running(stack)


def prod_stack(work, name, project="services/chat", overrides=()):
    """compose.prod.yaml as compose project ``switchyard-test-NAME`` over TLS, not started.

    ``work`` is a fresh directory (Path) for the env file and a self-signed
    pair from scripts/tls-selfsigned; ``project`` the ``SWITCHYARD_PROJECT``
    (repository-relative str; default: the chat example); ``overrides`` further
    compose files over compose.prod.yaml (e.g. ``["compose.redis-ha.yaml"]``).
    """
    subprocess.run([str(REPO / "scripts" / "tls-selfsigned"), str(work / "tls"), "localhost"], check=True,
                   capture_output=True)
    http_port, https_port = free_ports(2)
    env_file = work / ".env"
    env_file.write_text(
        "\n".join(
            [
                "POSTGRES_PASSWORD=pg-compose-test-secret",
                "REDIS_PASSWORD=redis-compose-test-secret",
                "SECRET_KEY=compose-test-" + "k" * 50,
                "ALLOWED_HOSTS=localhost,127.0.0.1",
                f"HTTP_PORT={http_port}",
                f"HTTPS_PORT={https_port}",
                f"TLS_CERT_FILE={work / 'tls' / 'tls.crt'}",
                f"TLS_KEY_FILE={work / 'tls' / 'tls.key'}",
                "ASGI_STOP_GRACE_PERIOD=15s",
            ]
        )
        + "\n"
    )
    env = {**PINNED, "SWITCHYARD_PROJECT": project, "ENV_FILE": str(env_file),
           "APP_IMAGE": f"switchyard-test-{name}-app:latest", "NGINX_APP_IMAGE": f"switchyard-test-{name}-nginx:latest"}
    stack = ComposeStack(["compose.prod.yaml", *overrides], f"switchyard-test-{name}", env, f"https://127.0.0.1:{https_port}",
                         verify=str(work / "tls" / "tls.crt"), env_file=env_file)
    stack.http_port = http_port
    return stack


@pytest.fixture(scope="module")
def compose_prod(tmp_path_factory):
    """compose.prod.yaml (the chat example) over TLS (a self-signed pair), two ASGI replicas."""
    require_docker()
    yield from running(prod_stack(tmp_path_factory.mktemp("compose-prod"), "prod"))


def login_fixture(stack):
    def signed_in(name):
        return ChatClient(stack.base_url, name, PASSWORDS[name], verify=stack.verify).login()

    return signed_in
