"""switchyard.metrics' label rules, and the handshake bookkeeping of switchyard.websocket's connection state."""

import time

import pytest
from prometheus_client import REGISTRY

from switchyard import metrics
from switchyard.websocket import _ConnectionState


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_close_codes_are_bounded_labels():
    assert metrics.close_code_label(1000) == "1000"
    assert metrics.close_code_label(4403) == "4403"
    assert metrics.close_code_label(None) == "1005"
    # Any other code a client may send is its class: no client can create thousands of series.
    assert {metrics.close_code_label(code) for code in range(3000, 5000)} - {"4000", "4401", "4403", "4408"} == {"3xxx", "4xxx"}
    assert metrics.close_code_label(77) == "other" and metrics.close_code_label("x") == "invalid"


def test_route_is_the_longest_prefix_never_the_path():
    assert metrics.route_label("/ws/chat/lobby/", ["/ws/", "/ws/chat/"]) == "/ws/chat/"
    assert metrics.route_label("/elsewhere/", ["/ws/"]) == "other"


def test_message_bytes_counts_utf8_payloads():
    assert metrics.message_bytes({"text": "héllo"}) == 6
    assert metrics.message_bytes({"bytes": b"\x00\x01"}) == 2
    assert metrics.message_bytes({"text": "\ud800"}) == 3  # a lone surrogate still has a size


def test_a_handshake_counts_once_as_accepted_and_opens_then_closes():
    route = "/test-accepted/"
    state = _ConnectionState(route)
    state.accepted()
    state.accepted()
    assert value("switchyard_websocket_handshakes_total", route=route, outcome="accepted", reason="") == 1
    assert value("switchyard_websocket_connections", route=route) == 1
    before = value("switchyard_websocket_closes_total", side="client", code="1001")
    state.closed("client", 1001)
    state.ended()
    assert value("switchyard_websocket_connections", route=route) == 0
    assert value("switchyard_websocket_closes_total", side="client", code="1001") - before == 1


def test_a_logged_refusal_counts_as_refused_even_if_the_project_accepts_to_close_with_a_code():
    route = "/test-refused/"
    state = _ConnectionState(route)
    state.refused("socket_cap")
    state.accepted()  # the chat accepts, then closes with 1008
    state.closed("server", 1008)
    state.ended()
    assert value("switchyard_websocket_handshakes_total", route=route, outcome="refused", reason="socket_cap") == 1
    assert value("switchyard_websocket_handshakes_total", route=route, outcome="accepted", reason="") == 0
    assert value("switchyard_websocket_connections", route=route) == 0


def test_a_close_or_an_end_before_accepting_is_a_refusal_by_the_application():
    route = "/test-closed/"
    _ConnectionState(route).closed("server", 1000)
    ended = _ConnectionState(route)
    ended.ended()
    assert value("switchyard_websocket_handshakes_total", route=route, outcome="refused", reason="application") == 2


@pytest.mark.django_db
def test_an_unknown_http_method_never_becomes_a_label_value():
    from django.test import Client

    response = Client().generic("FOOBAR", "/accounts/login/")
    assert response.status_code in (400, 405)
    methods = {sample.labels.get("method") for family in REGISTRY.collect() for sample in family.samples
               if sample.name.startswith("switchyard_django_http")}
    assert "FOOBAR" not in methods and "<invalid method>" in methods


def test_dependency_collector_describes_without_checking_and_reports_stale_checks_as_down(monkeypatch):
    collector = metrics.DependencyCollector()
    assert [family.name for family in collector.describe()] == ["switchyard_dependency_up"]
    monitor = metrics.DependencyMonitor()
    monitor.latest, monitor.checked_at = {"database": "ok", "redis": "ok"}, time.monotonic()
    monkeypatch.setattr(metrics, "_monitor", monitor)
    samples = {s.labels["dependency"]: s.value for family in collector.collect() for s in family.samples}
    assert samples == {"database": 1, "redis": 1}
    monitor.checked_at -= 3 * monitor.interval + 1  # the checks are stuck (an unreachable database)
    samples = {s.labels["dependency"]: s.value for family in collector.collect() for s in family.samples}
    assert samples == {"database": 0, "redis": 0}
