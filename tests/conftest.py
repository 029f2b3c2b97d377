"""Fixtures of the stack tests: a real native stack on free loopback ports.

The ``stack`` fixture starts Redis, gunicorn, two ASGI workers and nginx through
``deploy.native.NativeStack`` (the code behind ``scripts/stack up``), once per
ASGI server (daphne, uvicorn), and tests talk only to nginx.
"""

import json
import socket
from pathlib import Path

import pytest

from deploy.native import CHAT_PROJECT, NativeStack, Project, StackConfig
from tests.clients import ChatClient

REPO = Path(__file__).resolve().parent.parent
# Projects the stack tests deploy unmodified, besides the chat example.
LIVEBOARD_PROJECT = REPO / "examples" / "liveboard"
TUTORIAL_PROJECT = REPO / "tests" / "projects" / "tutorial"

PASSWORDS = {"alice": "alice-stack-pass", "bob": "bob-stack-pass", "carol": "carol-stack-pass",
             "mallory": "mallory-stack-pass", "trudy": "trudy-stack-pass", "fuzzer": "fuzzer-stack-pass"}
PRESENCE_TTL, PRESENCE_HEARTBEAT = 4, 1  # seconds
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "var" / "test-output"


def free_ports(count):
    """Return ``count`` distinct free TCP ports on 127.0.0.1 (ints)."""
    holders = []
    try:
        for _ in range(count):
            holder = socket.socket()
            holder.bind(("127.0.0.1", 0))
            holders.append(holder)
        return [holder.getsockname()[1] for holder in holders]
    finally:
        for holder in holders:
            holder.close()


# ``manage.py shell -c`` code that creates (or resets) the test users.
CREATE_USERS = (
    "from django.contrib.auth import get_user_model\n"
    "User = get_user_model()\n"
    f"for name, password in {PASSWORDS!r}.items():\n"
    "    user, _ = User.objects.get_or_create(username=name)\n"
    "    user.set_password(password)\n"
    "    user.save()\n"
)


def create_users(stack):
    """Create the test users (idempotent) in a native stack."""
    stack.manage("shell", "-c", CREATE_USERS)


@pytest.fixture(scope="session")
def output_dir():
    """Where tests leave artifacts for people (screenshots): ``var/test-output/``."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


def native_stack(run_dir, project=CHAT_PROJECT, server="daphne", **config):
    """Return a (not yet started) :class:`NativeStack` serving ``project`` (a directory) with two ``server`` workers.

    Every port is a free loopback port; ``run_dir`` a fresh directory;
    ``config`` overrides further :class:`StackConfig` fields.
    """
    web, redis, nginx, *asgi = free_ports(5)
    fields = dict(port=nginx, web_port=web, asgi_ports=asgi, asgi_server=server, redis_port=redis,
                  run_dir=run_dir, drain_timeout=5, project=Project.find(project))
    return NativeStack(StackConfig(**{**fields, **config}))


def running(native):
    """Start ``native`` (a :class:`NativeStack`), create the test users, yield it, stop it: a fixture's body."""
    native.start(timeout=90)
    try:
        create_users(native)
        yield native
    finally:
        native.stop()


@pytest.fixture(scope="session", params=["daphne", "uvicorn"])
def stack(request, tmp_path_factory):
    """A running native stack of the chat example with two ASGI workers of the given server; stopped at the end."""
    # Short presence bounds so the presence fault test ends quickly.
    yield from running(native_stack(
        tmp_path_factory.mktemp(f"stack-{request.param}"), server=request.param,
        extra_env={"PRESENCE_TTL": str(PRESENCE_TTL), "PRESENCE_HEARTBEAT": str(PRESENCE_HEARTBEAT)}))


def upgrades_by_worker(stack):
    """Return ``{log name: [path, ...]}``: the WebSocket upgrades each ASGI worker of a native ``stack`` accepted.

    Read from the workers' connection log (``switchyard.websocket.ConnectionLog``'s
    ``upgrade`` records), which every project's sockets pass through.
    """
    found = {}
    for path in sorted(stack.log_dir.glob("asgi-*.log")):
        found[path.stem] = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"upgrade"' in line:
                record = json.loads(line)
                if record.get("event") == "upgrade":
                    found[path.stem].append(record["path"])
    return found


@pytest.fixture
def base_url(stack):
    return stack.config.url


@pytest.fixture
def login(base_url):
    """Return a function ``login(name) -> ChatClient`` signed in as a test user."""

    def signed_in(name):
        return ChatClient(base_url, name, PASSWORDS[name]).login()

    return signed_in


FIGURES = []  # (test name, figures line) of the fault tests, printed at the end


@pytest.fixture
def report(request, output_dir):
    """Record a figures line for the terminal summary and ``var/test-output/reliability.txt``."""

    def record(line):
        FIGURES.append(f"{request.node.name}: {line}")
        with open(output_dir / "reliability.txt", "a") as out:
            out.write(f"{request.node.name}: {line}\n")

    return record


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("fault-test figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
