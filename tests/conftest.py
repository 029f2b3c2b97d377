"""Fixtures of the stack tests: a real native stack on free loopback ports.

The ``stack`` fixture starts Redis, gunicorn, two ASGI workers and nginx through
``deploy.native.NativeStack`` (the code behind ``scripts/stack up``), once per
ASGI server (daphne, uvicorn), and tests talk only to nginx.
"""

import socket
from pathlib import Path

import pytest

from deploy.native import NativeStack, StackConfig
from tests.clients import ChatClient

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


@pytest.fixture(scope="session", params=["daphne", "uvicorn"])
def stack(request, tmp_path_factory):
    """A running native stack with two ASGI workers of the given server; stopped at the end."""
    web, redis, nginx, *asgi = free_ports(5)
    config = StackConfig(
        port=nginx,
        web_port=web,
        asgi_ports=asgi,
        asgi_server=request.param,
        redis_port=redis,
        run_dir=tmp_path_factory.mktemp(f"stack-{request.param}"),
        drain_timeout=5,
        # Short presence bounds so the presence fault test ends quickly.
        extra_env={"PRESENCE_TTL": str(PRESENCE_TTL), "PRESENCE_HEARTBEAT": str(PRESENCE_HEARTBEAT)},
    )
    native = NativeStack(config)
    native.start(timeout=90)
    try:
        create_users(native)
        yield native
    finally:
        native.stop()


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
