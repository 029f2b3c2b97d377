"""Metrics (switchyard.metrics, chat.metrics): every process's /metrics answers, and counters move by what a
chat load through nginx did. docs/operations.md lists the metrics."""

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.clients import RawSocket
from tests.metrics import alert_names, scrape, scrape_all, total


def worker_urls(stack):
    return {name: f"http://127.0.0.1:{port}/metrics" for name, port in stack.config.metrics_ports().items()}


def asgi_samples(stack):
    return scrape_all(url for name, url in worker_urls(stack).items() if name.startswith("asgi-"))


def all_samples(stack):
    return scrape_all(worker_urls(stack).values())


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_every_process_serves_metrics_off_the_front_door(stack):
    urls = worker_urls(stack)
    assert set(urls) == {"web", *(f"asgi-{port}" for port in stack.config.asgi_ports)}
    for name, url in urls.items():
        samples = scrape(url)
        names = {sample for sample, _, _ in samples}
        if name == "web":
            assert "switchyard_web_process_resident_memory_bytes" in names  # one per gunicorn worker
            pids = {labels["pid"] for sample, labels, _ in samples if sample == "switchyard_web_process_resident_memory_bytes"}
            assert len(pids) == 2, pids  # WEB_CONCURRENCY workers, summed by the master
        else:
            assert {"process_resident_memory_bytes", "process_cpu_seconds_total",
                    "switchyard_drain_in_progress"} <= names
            assert total(samples, "switchyard_dependency_up", dependency="database") == 1
            assert total(samples, "switchyard_dependency_up", dependency="redis") == 1
        # One prefix for Switchyard's own metrics.
        own = {sample for sample in names if not sample.startswith(("process_", "python_"))}
        assert own and all(sample.startswith("switchyard_") for sample in own), own
    # Through nginx, /metrics is the project's URL space: no metrics there.
    front = requests.get(f"{stack.config.url}/metrics", timeout=5)
    assert front.status_code == 404 and "switchyard_" not in front.text


def test_foreign_origin_refusals_raise_the_origin_counter_by_n(stack, login):
    alice = login("alice")
    before = total(asgi_samples(stack), "switchyard_websocket_handshakes_total", outcome="refused", reason="origin")
    refused = 0
    for _ in range(5):
        with pytest.raises(InvalidStatus) as refusal:
            with alice.socket(f"metrics-{uuid.uuid4().hex[:6]}", origin="http://evil.example"):
                pass
        refused += refusal.value.response.status_code == 403
    assert refused == 5
    after = total(asgi_samples(stack), "switchyard_websocket_handshakes_total", outcome="refused", reason="origin")
    assert after - before == 5


def test_refusals_by_the_project_are_counted_by_the_reason_it_logged(stack, login):
    alice = login("alice")
    before = total(asgi_samples(stack), "switchyard_websocket_handshakes_total", outcome="refused",
                   reason="not_signed_in")
    for _ in range(3):
        with pytest.raises(InvalidStatus):
            with alice.socket("lobby", cookie=False):
                pass
    after = total(asgi_samples(stack), "switchyard_websocket_handshakes_total", outcome="refused",
                  reason="not_signed_in")
    assert after - before == 3


def test_a_chat_load_moves_the_counters_by_what_it_did(stack, login):
    room = f"metrics-{uuid.uuid4().hex[:8]}"
    names = ("alice", "bob", "carol")
    clients = [login(name) for name in names]
    before = all_samples(stack)
    posts = 12
    with clients[0].socket(room) as a, clients[1].socket(room) as b, clients[2].socket(room) as c:
        open_now = total(asgi_samples(stack), "switchyard_websocket_connections", route="/ws/")
        assert open_now - total(before, "switchyard_websocket_connections", route="/ws/") == 3
        for n in range(posts):
            if n % 2:
                a.say(f"m{n}")
            else:
                assert clients[1].post_message(room, f"m{n}").status_code == 201
        for socket in (a, b, c):
            got = [socket.recv(frame_type="message")["body"] for _ in range(posts)]
            assert sorted(got) == sorted(f"m{n}" for n in range(posts))  # socket and API posts race
    wait_for(lambda: total(asgi_samples(stack), "switchyard_websocket_connections", route="/ws/")
             == total(before, "switchyard_websocket_connections", route="/ws/"), 10, "the gauge back")
    after = all_samples(stack)

    def moved(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("switchyard_websocket_handshakes_total", outcome="accepted") == 3
    assert moved("switchyard_chat_messages_stored_total") == posts  # on gunicorn (API) and the workers (sockets)
    delivered = moved("switchyard_chat_messages_delivered_total")
    assert delivered == 3 * posts, delivered
    assert moved("switchyard_chat_delivery_latency_seconds_count") == moved(
        "switchyard_chat_messages_delivered_total", path="live")
    assert moved("switchyard_websocket_frames_total", direction="in") == posts // 2
    # Out: per socket a welcome, presence frames, and every message.
    assert moved("switchyard_websocket_frames_total", direction="out") >= 3 * (posts + 1)
    assert moved("switchyard_websocket_bytes_total", direction="in") > 0
    assert moved("switchyard_websocket_closes_total", side="client", code="1000") == 3
    assert moved("switchyard_channel_layer_messages_total", operation="group_send") >= posts
    # On daphne the fan-out layer hands each socket's next message to the consumer's direct handler
    # (switchyard.fanout); on uvicorn every event goes through the consumer's queue.
    direct = moved("switchyard_channel_layer_messages_total", operation="direct")
    queued = moved("switchyard_channel_layer_messages_total", operation="receive")
    assert direct + queued >= 3 * posts, (direct, queued)  # every socket's every message, one way or the other
    if stack.config.asgi_server == "daphne":
        assert direct >= posts, direct
    else:
        assert direct == 0, direct
    assert moved("switchyard_channel_layer_errors_total") == 0
    assert moved("switchyard_django_http_responses_total_by_status_total", status="201") == posts // 2


@pytest.mark.asyncio
async def test_a_drain_sets_its_gauge_and_a_new_worker_clears_it(stack, login):
    alice = login("alice")
    urls = worker_urls(stack)
    # A client that never answers the server's close keeps the drain going for ASGI_DRAIN_TIMEOUT.
    raw = await asyncio.to_thread(RawSocket, stack.config.url, f"drain-{uuid.uuid4().hex[:6]}", alice.cookie_header())
    try:
        # The welcome names the worker ("host:pid"); supervisord knows each worker's pid.
        pid = raw.welcome["worker"].rsplit(":", 1)[1]
        holder = next(port for port in stack.config.asgi_ports
                      if stack.ctl("pid", f"asgi:asgi-{port}").stdout.strip() == pid)
        url = urls[f"asgi-{holder}"]
        assert total(scrape(url), "switchyard_drain_in_progress") == 0
        pid = stack.ctl("pid", f"asgi:asgi-{holder}").stdout.strip()
        restart = asyncio.create_task(asyncio.to_thread(stack.ctl, "restart", f"asgi:asgi-{holder}"))
        draining = []

        def seen_draining():
            try:
                draining.append(total(scrape(url, timeout=1), "switchyard_drain_in_progress"))
            except requests.RequestException:
                pass
            return draining and draining[-1] == 1

        await asyncio.to_thread(wait_for, seen_draining, 10, "switchyard_drain_in_progress 1")
        assert (await restart).returncode == 0
        assert stack.ctl("pid", f"asgi:asgi-{holder}").stdout.strip() != pid

        def fresh():
            try:
                return total(scrape(url, timeout=1), "switchyard_drain_in_progress") == 0
            except requests.RequestException:
                return False

        await asyncio.to_thread(wait_for, fresh, 20, "the new worker's metrics")
    finally:
        raw.sock.close()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """A native stack with Prometheus (``scripts/stack up --monitoring``), stopped at the end."""
    from tests.conftest import free_ports, native_stack, running

    (port,) = free_ports(1)
    yield from running(native_stack(tmp_path_factory.mktemp("monitored"), monitoring_port=port))


def prometheus(stack, path, **params):
    response = requests.get(f"http://127.0.0.1:{stack.config.monitoring_port}/api/v1/{path}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


def test_native_prometheus_scrapes_every_process_and_loads_the_alert_rules(monitored):
    expected = {f"127.0.0.1:{port}" for port in monitored.config.metrics_ports().values()}

    def all_up():
        targets = prometheus(monitored, "targets")["activeTargets"]
        return {t["labels"]["instance"] for t in targets if t["health"] == "up"} == expected

    wait_for(all_up, 30, "every target up")
    jobs = {t["labels"]["job"] for t in prometheus(monitored, "targets")["activeTargets"]}
    assert jobs == {"switchyard-web", "switchyard-asgi"}
    rules = [rule["name"] for group in prometheus(monitored, "rules")["groups"] for rule in group["rules"]]
    assert set(rules) == alert_names()
    result = prometheus(monitored, "query", query='sum by (job) (up{job=~"switchyard-.*"})')["result"]
    assert {r["metric"]["job"]: float(r["value"][1]) for r in result} == {
        "switchyard-web": 1, "switchyard-asgi": len(monitored.config.asgi_ports)}


DASHBOARD = Path(__file__).resolve().parent.parent.parent / "deploy" / "grafana" / "switchyard-dashboard.json"


@pytest.mark.asyncio
async def test_every_dashboard_panel_query_returns_series_during_a_chat_load(monitored):
    """No Grafana runs here: each panel's query goes to the stack's Prometheus while chat traffic flows."""
    from tests.chatload import run_load
    from tests.clients import ChatClient
    from tests.conftest import PASSWORDS

    clients = [ChatClient(monitored.config.url, name, PASSWORDS[name]).login() for name in ("alice", "bob", "carol")]
    room = f"dashboard-{uuid.uuid4().hex[:6]}"
    with pytest.raises(InvalidStatus):  # a refusal, for the refusal panels
        with clients[0].socket(room, origin="http://evil.example"):
            pass
    figures = await run_load(monitored.config.url, [c.cookie_header() for c in clients], room, clients=6, rate=10.0,
                             duration=15.0, fetch_stored=lambda: asyncio.to_thread(clients[0].messages_after, room))
    assert figures.lost == 0 and figures.stored > 50
    for n in range(3):
        assert clients[1].post_message(room, f"api {n}").status_code == 201
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= 16

    def empty_queries():
        found = []
        for title, expr in queries:
            result = prometheus(monitored, "query", query=expr)["result"]
            if not [r for r in result if r["value"][1] not in ("NaN",)]:
                found.append((title, expr))
        return found

    deadline = time.monotonic() + 40
    while (empty := await asyncio.to_thread(empty_queries)) and time.monotonic() < deadline:
        # HTTP keeps coming, so rates over a view's series (new at its first request) are not 0.
        await asyncio.to_thread(clients[1].post_message, room, "more")
        await asyncio.sleep(2)
    assert empty == [], f"panels whose query returned no series: {empty}"


def test_dashboard_is_provisioning_ready():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "switchyard" and dashboard["templating"]["list"][0]["type"] == "datasource"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["description"]
