"""The live operations page (switchyard.ops) in headless Chromium: numbers move while a chat load runs, a killed
worker disappears and its replacement appears; only staff users get it."""

import asyncio
import os
import signal
import threading
import time
import uuid

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.chatload import run_load

pytestmark = pytest.mark.browser


def open_ops(browser, stack):
    page = browser.new_context().new_page()
    page.goto(f"{stack.config.url}/ops/")
    assert "/accounts/login/" in page.url  # staff only: sign in first
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", stack.admin_password)
    page.click("button[type=submit]")
    page.wait_for_url("**/ops/")
    page.wait_for_selector("#state[data-state=connected]", timeout=15000)
    return page


def workers_shown(page):
    """The worker ids in the table, read in one call (the page rebuilds the table every second)."""
    return page.locator("#workers tbody tr td:first-child").all_text_contents()


def number(page, element_id):
    text = page.text_content(f"#{element_id}")
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def wait(predicate, timeout, what):
    """Poll ``predicate`` from Python (the page's CSP forbids Playwright's string evaluation)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.25)


def test_ops_page_is_for_staff_only(stack, login):
    alice = login("alice")
    page = alice.http.get(f"{stack.config.url}/ops/", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and "/accounts/login/" in page.headers["Location"]
    anonymous = requests.get(f"{stack.config.url}/ops/", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    # The socket: a signed-in user who is not staff is closed with 4403.
    url = stack.config.url.replace("http://", "ws://") + "/ws/switchyard/ops/"
    with connect(url, origin=stack.config.url, additional_headers={"Cookie": alice.cookie_header()},
                 open_timeout=10) as socket:
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=10)
        assert socket.close_code == 4403


def test_ops_page_shows_the_stack_live(browser, stack, login, output_dir):
    page = open_ops(browser, stack)
    wait(lambda: len(workers_shown(page)) == 2, 15, "both workers")
    assert page.text_content("[data-dependency=database]") == "database: ok"
    assert page.text_content("[data-dependency=redis]") == "redis: ok"

    # Numbers move while a chat load runs.
    cookies = [login(name).cookie_header() for name in ("alice", "bob", "carol")]
    room = f"ops-{uuid.uuid4().hex[:6]}"
    reader = login("alice")
    load = threading.Thread(target=lambda: asyncio.run(run_load(
        stack.config.url, cookies, room, clients=8, rate=10.0, duration=12.0,
        fetch_stored=lambda: asyncio.to_thread(reader.messages_after, room))))
    load.start()
    try:
        wait(lambda: number(page, "total-sockets") >= 9, 20, "the load's 8 sockets and the page's own counted")
        wait(lambda: number(page, "rate-in") > 2, 20, "frames in/s above 2")
        shot = output_dir / f"ops-{stack.config.asgi_server}.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        load.join(60)
    wait(lambda: number(page, "rate-in") < 1, 20, "frames in/s back near 0")

    # A killed worker disappears; the one supervisord starts in its place appears.
    port = stack.config.asgi_ports[0]
    pid = int(stack.ctl("pid", f"asgi:asgi-{port}").stdout)
    before = workers_shown(page)
    victim = next(worker for worker in before if worker.endswith(f":{pid}"))
    os.kill(pid, signal.SIGKILL)
    wait(lambda: victim not in workers_shown(page), 20, f"{victim} gone from the page")
    wait(lambda: len(workers_shown(page)) == 2, 30, "a new worker in its place")
    new_pid = int(stack.ctl("pid", f"asgi:asgi-{port}").stdout)
    assert new_pid != pid and any(worker.endswith(f":{new_pid}") for worker in workers_shown(page))
