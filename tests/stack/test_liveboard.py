"""examples/liveboard, a plain Channels project, deployed unmodified: live locations and a sensor dashboard.

The functions taking ``base_url`` are shared: the compose and Ansible tests
import them and run them against their own front door (TLS verified through
``REQUESTS_CA_BUNDLE``). Here they run on a native stack started with
``project=examples/liveboard`` (what ``scripts/stack up --project
examples/liveboard`` runs), and two headless Chromium browsers on different
ASGI workers see each other's position and every reading, including
readings POSTed over HTTP to gunicorn.
"""

import contextlib
import uuid

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.clients import json_socket
from tests.conftest import LIVEBOARD_PROJECT, native_stack, upgrades_by_worker

pytestmark = pytest.mark.stack


def is_position(name):
    return lambda frame: frame.get("type") == "position" and frame.get("name") == name


def is_reading(sensor, value):
    return lambda frame: frame.get("type") == "reading" and frame.get("sensor") == sensor and frame.get("value") == value


# --- Shared with the compose and Ansible tests ----------------------------------------


def test_liveboard_positions_reach_every_socket(base_url):
    names = [f"p{uuid.uuid4().hex[:6]}" for _ in range(3)]
    with contextlib.ExitStack() as opened:
        sockets = [opened.enter_context(json_socket(base_url, "/ws/location/")) for _ in names]
        for socket in sockets:
            socket.recv_until(lambda frame: frame.get("type") == "hello", what="hello")
        for index, (name, socket) in enumerate(zip(names, sockets)):
            socket.send({"type": "position", "name": name, "lat": 10.0 + index, "lon": -20.5 - index})
        expected = {name: (10.0 + index, -20.5 - index) for index, name in enumerate(names)}
        for socket in sockets:  # positions from other workers may come in any order
            seen = {}
            while seen != expected:
                frame = socket.recv_until(lambda frame: frame.get("name") in expected and frame.get("name") not in seen,
                                          what=f"positions of {sorted(set(expected) - set(seen))}")
                seen[frame["name"]] = (frame["lat"], frame["lon"])
        # Bad input gets an error frame and the socket lives on.
        sockets[0].send({"type": "position", "name": names[0], "lat": 91, "lon": 0})
        assert "lat" in sockets[0].recv_until(lambda frame: frame.get("type") == "error", what="error")["error"]
        sockets[0].send({"type": "position", "name": names[0], "lat": 1.5, "lon": 2.5})
        sockets[1].recv_until(lambda frame: is_position(names[0])(frame) and frame["lat"] == 1.5, what="the move")


def test_liveboard_readings_over_http_and_websocket_reach_dashboards(base_url):
    sensor = f"greenhouse.{uuid.uuid4().hex[:6]}"
    with json_socket(base_url, "/ws/sensor_data/") as dashboard_a, \
            json_socket(base_url, "/ws/sensor_data/") as dashboard_b, \
            json_socket(base_url, "/ws/sensor_data/") as device:
        device.send({"sensor": sensor, "value": 21.5})
        posted = requests.post(f"{base_url}/api/readings/", json={"sensor": sensor, "value": 22.25}, timeout=10)
        assert posted.status_code == 202, posted.text
        refused = requests.post(f"{base_url}/api/readings/", json={"sensor": sensor, "value": "hot"}, timeout=10)
        assert refused.status_code == 400 and "error" in refused.json()
        for dashboard in (dashboard_a, dashboard_b):
            assert dashboard.recv_until(is_reading(sensor, 21.5), what="the socket reading")["via"] == "websocket"
            assert dashboard.recv_until(is_reading(sensor, 22.25), what="the HTTP reading")["via"] == "http"


def test_liveboard_foreign_origin_is_refused(base_url):
    for path in ("/ws/location/", "/ws/sensor_data/"):
        with pytest.raises(InvalidStatus) as refused:
            with json_socket(base_url, path, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403


# --- Native: the stack, and real browsers ---------------------------------------------------


@pytest.fixture(scope="module")
def liveboard(tmp_path_factory):
    """examples/liveboard on a running native stack (two daphne workers)."""
    native = native_stack(tmp_path_factory.mktemp("liveboard"), LIVEBOARD_PROJECT)
    native.start(timeout=90)
    try:
        yield native
    finally:
        native.stop()


@pytest.fixture
def base_url(liveboard):
    return liveboard.config.url


def location_upgrades(stack):
    return {worker: paths.count("/ws/location/") for worker, paths in upgrades_by_worker(stack).items()}


@pytest.mark.browser
def test_two_browsers_on_different_workers_see_each_others_position(browser, liveboard, output_dir):
    url = liveboard.config.url
    before = location_upgrades(liveboard)
    ada = browser.new_context().new_page()
    ada.goto(f"{url}/location/?name=ada&lat=48.85&lon=2.35")
    ada.wait_for_selector("#status:has-text('connected')", timeout=15000)
    bob = browser.new_context().new_page()
    bob.goto(f"{url}/location/?name=bob&lat=-33.87&lon=151.21")
    bob.wait_for_selector("#status:has-text('connected')", timeout=15000)
    placed = {worker: count - before.get(worker, 0) for worker, count in location_upgrades(liveboard).items()}
    assert sorted(placed.values()) == [1, 1], f"both pages on one worker: {placed}"
    for page, other, lat in ((ada, "bob", "-33.87"), (bob, "ada", "48.85")):
        page.wait_for_selector(f"g.marker[data-name={other}][data-lat='{lat}']", timeout=10000)
    # Moving by hand moves the marker in the other browser.
    bob.fill("input[name=lat]", "1.5")
    bob.fill("input[name=lon]", "2.5")
    bob.click("form button[type=submit]")
    ada.wait_for_selector("g.marker[data-name=bob][data-lat='1.5']", timeout=10000)
    ada.screenshot(path=str(output_dir / "liveboard-location.png"))


@pytest.mark.browser
def test_two_dashboards_on_different_workers_chart_every_reading(browser, liveboard, output_dir):
    url = liveboard.config.url
    before = {worker: paths.count("/ws/sensor_data/") for worker, paths in upgrades_by_worker(liveboard).items()}
    pages = []
    for _ in range(2):
        page = browser.new_context().new_page()
        page.goto(f"{url}/sensors/")
        page.wait_for_selector("#status:has-text('connected')", timeout=15000)
        pages.append(page)
    after = {worker: paths.count("/ws/sensor_data/") for worker, paths in upgrades_by_worker(liveboard).items()}
    assert sorted(after[worker] - before.get(worker, 0) for worker in after) == [1, 1]
    sensor = f"hall.{uuid.uuid4().hex[:6]}"
    sent = []
    with json_socket(url, "/ws/sensor_data/") as device:
        for step in range(5):
            device.send({"sensor": sensor, "value": 20 + step})
            sent.append((str(20 + step), "websocket"))
            response = requests.post(f"{url}/api/readings/", json={"sensor": sensor, "value": 30 + step}, timeout=10)
            assert response.status_code == 202
            sent.append((str(30 + step), "http"))
    for page in pages:
        page.wait_for_function(
            "([sensor, count]) => document.querySelectorAll(`#readings tr[data-sensor='${sensor}']`).length >= count",
            arg=[sensor, len(sent)], timeout=10000)
        rows = page.eval_on_selector_all(f"#readings tr[data-sensor='{sensor}']",
                                         "rows => rows.map(r => [r.dataset.value, r.dataset.via])")
        assert sorted(map(tuple, rows)) == sorted(sent)
    pages[0].screenshot(path=str(output_dir / "liveboard-sensors.png"))
