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


def test_asgi_cpu_shares_follow_the_cpu_weight():
    """Compose cannot read defaults.env: the asgi replicas' cpu_shares is ASGI_CPU_WEIGHT on Docker's scale.

    A plain number: Compose 1.29 refuses ``cpu_shares`` as an interpolated string.
    """
    shares = compose_file("compose.prod.yaml")["services"]["asgi"]["cpu_shares"]
    assert shares == 1024 * int(FACTS["ASGI_CPU_WEIGHT"]) // 100, shares


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
    # Prometheus (prod's monitoring profile) builds from the same context; it takes nothing of the project.
    assert set(built) == {"migrate", "web", "asgi", "nginx"} | ({"prometheus"} if name == "compose.prod.yaml" else set())
    assert set(built.values()) == {"${SWITCHYARD_PROJECT:-services/chat}"}


def test_env_example_shows_the_shared_defaults_as_they_are():
    """.env.example lists the shared facts commented out, for reference: each must be defaults.env's value."""
    shown = dict(re.findall(r"^#(\w+)=(.*)$", (REPO / ".env.example").read_text(), re.MULTILINE))
    restated = {name: value for name, value in shown.items() if name in FACTS}
    assert {"WEB_PORT", "ASGI_PORT", "ASGI_DRAIN_TIMEOUT"} <= set(restated), sorted(shown)
    assert restated == {name: FACTS[name] for name in restated}, "edit defaults.env, then .env.example's comments"


def test_redis_ha_override_takes_sentinel_facts_from_defaults_env():
    """compose.redis-ha.yaml: the sentinels read REDIS_SENTINEL_* from defaults.env; the app's URL restates
    only the master name and port, which must be defaults.env's; a sentinel and a data node per volume."""
    document = compose_file("compose.redis-ha.yaml")
    services = document["services"]
    sentinels = [name for name in services if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    for name in sentinels:
        assert services[name]["env_file"] == "services/switchyard/switchyard/defaults.env"
        assert (REPO / services[name]["env_file"]).is_file()
        command = services[name]["command"][-1]
        for fact in ("REDIS_SENTINEL_PORT", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_QUORUM",
                     "REDIS_SENTINEL_DOWN_AFTER_MS", "REDIS_SENTINEL_FAILOVER_TIMEOUT_MS"):
            assert f"$${fact}" in command, (name, fact)
    url = services["web"]["environment"]["REDIS_URL"]
    assert services["asgi"]["environment"]["REDIS_URL"] == url == services["migrate"]["environment"]["REDIS_URL"]
    found = re.fullmatch(r"redis\+sentinel://:\$\{REDIS_PASSWORD[^}]*\}@(.+)/(\w+)/0", url)
    assert found, url
    hosts, master = found.group(1).split(","), found.group(2)
    assert master == FACTS["REDIS_SENTINEL_MASTER"]
    addresses = [services[name]["networks"]["backend"]["ipv4_address"] for name in sentinels]
    assert hosts == [f"{address}:{FACTS['REDIS_SENTINEL_PORT']}" for address in addresses]
    # Each node announces the address it has; every REDIS_HA_NET default is the same.
    for name, definition in services.items():
        if "networks" in definition and name not in ("migrate", "web", "asgi"):
            assert definition["environment"]["ANNOUNCE_IP"] == definition["networks"]["backend"]["ipv4_address"], name
    assert len(set(re.findall(r"\$\{REDIS_HA_NET:-([\d.]+)\}", (REPO / "compose.redis-ha.yaml").read_text()))) == 1
    # Compose 1.29 replaces the backend network's definition: it must stay internal.
    assert document["networks"]["backend"]["internal"] is True
    volumes = [definition["volumes"][0].split(":")[0] for definition in services.values() if "volumes" in definition]
    assert len(set(volumes)) == len(volumes) == 5 and set(volumes) == set(document["volumes"])
    # 1.29's schema: no v2-only keys here either.
    assert not {"include", "name"} & set(document)
