"""compose.prod.yaml with ``--profile monitoring``: Prometheus finds every web and asgi replica through Docker's
DNS, scrapes them, loads the alert rules, and is published on the host's loopback only (docs/operations.md)."""

import time
import uuid

import pytest
import requests

from tests.compose.conftest import login_fixture, prod_stack, require_docker, running
from tests.conftest import free_ports
from tests.metrics import alert_names

pytestmark = pytest.mark.compose


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    require_docker()
    stack = prod_stack(tmp_path_factory.mktemp("compose-monitoring"), "monitoring")
    (port,) = free_ports(1)
    stack.env.update({"COMPOSE_PROFILES": "monitoring", "PROMETHEUS_PORT": str(port),
                      "PROMETHEUS_APP_IMAGE": "switchyard-test-monitoring-prometheus:latest"})
    stack.prometheus = f"http://127.0.0.1:{port}"
    yield from running(stack)


@pytest.fixture(autouse=True)
def trust_the_test_certificate(monitored, monkeypatch):
    """``requests`` prefers REQUESTS_CA_BUNDLE to a session's ``verify``: point it at the stack's self-signed pair."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", monitored.verify)


def api(stack, path, **params):
    response = requests.get(f"{stack.prometheus}/api/v1/{path}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


def healthy_targets(stack):
    return sorted((t["labels"]["job"], t["labels"]["instance"]) for t in api(stack, "targets")["activeTargets"]
                  if t["health"] == "up")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def replica_addresses(stack, service):
    import subprocess

    addresses = []
    for container in stack.container_ids(service):
        result = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                                 container], capture_output=True, text=True, check=True)
        addresses += result.stdout.split()
    return addresses


def test_prometheus_scrapes_every_replica_and_finds_a_new_one(monitored):
    def every_replica_up(asgi_replicas):
        targets = healthy_targets(monitored)
        jobs = [job for job, _ in targets]
        return jobs.count("switchyard-asgi") == asgi_replicas and jobs.count("switchyard-web") == 1

    wait_for(lambda: every_replica_up(2), 60, "web and both asgi replicas up")
    scraped = {instance.rsplit(":", 1)[0] for _, instance in healthy_targets(monitored)}
    assert set(replica_addresses(monitored, "asgi")) & scraped and len(scraped) == 3
    monitored.compose("up", "-d", "--no-recreate", "--scale", "asgi=3")
    wait_for(lambda: every_replica_up(3), 90, "the third asgi replica discovered")
    result = api(monitored, "query", query='count by (job) (up{job=~"switchyard-.*"} == 1)')["result"]
    assert {r["metric"]["job"]: r["value"][1] for r in result} == {"switchyard-web": "1", "switchyard-asgi": "3"}


def test_prometheus_loads_the_alert_rules_and_sees_chat_traffic(monitored):
    rules = [rule["name"] for group in api(monitored, "rules")["groups"] for rule in group["rules"]]
    assert set(rules) == alert_names()
    login = login_fixture(monitored)
    alice = login("alice")
    room = f"mon-{uuid.uuid4().hex[:6]}"
    for n in range(5):
        assert alice.post_message(room, f"m{n}").status_code == 201

    def stored_seen():
        result = api(monitored, "query", query="sum(switchyard_chat_messages_stored_total)")["result"]
        return result and float(result[0]["value"][1]) >= 5

    wait_for(stored_seen, 30, "the stored counter scraped")


def test_prometheus_container_turns_healthy(monitored):
    import subprocess

    (container,) = monitored.container_ids("prometheus")

    def healthy():
        result = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
                                capture_output=True, text=True, check=True)
        return result.stdout.strip() == "healthy"

    wait_for(healthy, 60, "prometheus' healthcheck")


def test_prometheus_is_published_on_loopback_only_and_the_app_ports_not_at_all(monitored):
    published = monitored.compose("port", "prometheus", "9090").stdout.strip()
    assert published.startswith("127.0.0.1:"), published
    from switchyard.defaults import env

    facts = env()
    offset = facts.int("METRICS_PORT_OFFSET")
    for service, port in (("web", facts.int("WEB_PORT") + offset), ("asgi", facts.int("ASGI_PORT") + offset)):
        result = monitored.compose("port", service, str(port), check=False)
        assert result.stdout.strip() in ("", ":0"), f"{service} publishes its metrics: {result.stdout!r}"
