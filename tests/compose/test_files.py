"""The compose files themselves, without Docker: each shared fact has one source
(the runtime's defaults.env), and what compose must restate stays consistent with it.

Plain unit tests (no ``compose`` marker): they run with the rest of the suite.
"""

import re
from pathlib import Path

import pytest
import yaml

from switchyard.defaults import load

REPO = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILES = ("compose.dev.yaml", "compose.prod.yaml")
FACTS = load()


def compose_file(name):
    return yaml.safe_load((REPO / name).read_text())


def seconds(duration):
    """Seconds (float) of a compose duration such as ``"20s"``, ``"1m30s"`` or ``"1.5s"``."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(number + unit for number, unit in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def default_of(value):
    """The default of a ``${VAR:-default}`` interpolation (or the value itself)."""
    found = re.fullmatch(r"\$\{\w+:?-(.*)\}", value)
    return found.group(1) if found else value


def test_asgi_stop_grace_period_outlasts_the_drain():
    """Compose cannot read defaults.env: its default grace period (and .env.example's) must exceed ASGI_DRAIN_TIMEOUT."""
    drain = int(FACTS["ASGI_DRAIN_TIMEOUT"])
    grace = compose_file("compose.prod.yaml")["services"]["asgi"]["stop_grace_period"]
    assert grace.startswith("${ASGI_STOP_GRACE_PERIOD"), grace
    assert seconds(default_of(grace)) > drain, f"stop_grace_period {grace} within ASGI_DRAIN_TIMEOUT={drain}s"
    example = re.search(r"^ASGI_STOP_GRACE_PERIOD=(\S+)$", (REPO / ".env.example").read_text(), re.MULTILINE)
    assert example and seconds(example.group(1)) > drain, ".env.example's ASGI_STOP_GRACE_PERIOD"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_ports_are_not_restated(name):
    """Commands, probes and nginx's upstreams take WEB_PORT and ASGI_PORT from defaults.env, not from here."""
    for path in (REPO / name, REPO / "deploy" / "Dockerfile"):
        text = path.read_text()
        for fact in ("WEB_PORT", "ASGI_PORT"):
            assert not re.search(rf"\b{FACTS[fact]}\b", text), f"{path.name} restates {fact}={FACTS[fact]}"
    services = compose_file(name)["services"]
    assert services["web"]["healthcheck"]["test"][-1] == "web"
    assert services["asgi"]["healthcheck"]["test"][-1] == "asgi"
    assert "--port" not in services["asgi"]["command"] and "--bind" not in services["web"]["command"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_accepted_by_compose_1_29_and_v2(name):
    """No key that only Compose v2 knows (1.29's schema rejects them)."""
    document = compose_file(name)
    assert not {"include", "name"} & set(document)
    for service, definition in document["services"].items():
        assert "develop" not in definition, service
        build = definition.get("build", {})
        assert "additional_contexts" not in build, service
        assert not isinstance(definition.get("env_file"), dict), service


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_image_is_built_from_the_same_project(name):
    """The app services and nginx build with the same SWITCHYARD_PROJECT (nginx carries that project's static files)."""
    services = compose_file(name)["services"]
    built = {service: definition["build"]["args"]["SWITCHYARD_PROJECT"]
             for service, definition in services.items() if "build" in definition}
    assert set(built) == {"migrate", "web", "asgi", "nginx"}
    assert set(built.values()) == {"${SWITCHYARD_PROJECT:-services/chat}"}


def test_env_example_shows_the_shared_defaults_as_they_are():
    """.env.example lists the shared facts commented out, for reference: each must be defaults.env's value."""
    shown = dict(re.findall(r"^#(\w+)=(.*)$", (REPO / ".env.example").read_text(), re.MULTILINE))
    restated = {name: value for name, value in shown.items() if name in FACTS}
    assert {"WEB_PORT", "ASGI_PORT", "ASGI_DRAIN_TIMEOUT"} <= set(restated), sorted(shown)
    assert restated == {name: FACTS[name] for name in restated}, "edit defaults.env, then .env.example's comments"
