"""A real browser: Debian's headless Chromium, driven by Playwright, two signed-in
users in one room on different ASGI workers. Leaves a screenshot in
var/test-output/."""

import uuid

import pytest

from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser

def open_room(browser, base_url, user, room):
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/chat/{room}/")
    assert "/accounts/login/" in page.url  # the room page asks for sign-in first
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"**/chat/{room}/")
    page.wait_for_selector("#state[data-state=connected]", timeout=15000)
    return page


def worker_of(page):
    return page.text_content("#worker")


def test_two_browsers_chat_across_workers(browser, base_url, output_dir, stack):
    room = f"browser-{uuid.uuid4().hex[:8]}"
    alice = open_room(browser, base_url, "alice", room)
    bob = open_room(browser, base_url, "bob", room)
    for _ in range(5):  # least_conn puts bob's socket on the other worker; make sure
        if worker_of(bob) != worker_of(alice):
            break
        bob.reload()
        bob.wait_for_selector("#state[data-state=connected]", timeout=15000)
    assert worker_of(alice) != worker_of(bob), "both sockets on one worker"

    alice.fill("#body", "hello from alice's browser")
    alice.press("#body", "Enter")
    line = bob.wait_for_selector("#messages li:has-text(\"hello from alice's browser\")", timeout=10000)
    assert "alice" in line.text_content()
    # The sender sees it too, once, and the input was cleared.
    alice.wait_for_selector("#messages li:has-text(\"hello from alice's browser\")", timeout=10000)
    bob.wait_for_selector("#online li:has-text('alice')", timeout=10000)  # presence shows both
    assert alice.locator("#messages li").count() == 1
    assert alice.input_value("#body") == ""

    shot = output_dir / f"browser-chat-{stack.config.asgi_server}.png"
    bob.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 1000


def test_page_reconnects_after_a_drain_and_shows_what_it_missed(browser, base_url, stack, login, output_dir):
    """SIGTERM the worker holding the page's socket: the page shows "reconnecting…",
    comes back on a worker, and shows the messages posted meanwhile, once each."""
    room = f"drain-{uuid.uuid4().hex[:8]}"
    page = open_room(browser, base_url, "bob", room)
    page.wait_for_selector("#online li:has-text('bob')", timeout=10000)
    pid = worker_of(page).rsplit(":", 1)[1]
    program = next(
        f"asgi:asgi-{port}" for port in stack.config.asgi_ports
        if stack.ctl("pid", f"asgi:asgi-{port}").stdout.strip() == pid
    )
    alice = login("alice")
    alice.post_message(room, "before the restart")
    page.wait_for_selector("#messages li:has-text('before the restart')", timeout=10000)
    states = []
    page.expose_function("recordState", lambda state: states.append(state))
    page.evaluate("""() => new MutationObserver(() => window.recordState(
        document.getElementById('state').dataset.state)).observe(
        document.getElementById('state'), {attributes: true})""")
    restart = stack.ctl("restart", program)
    assert restart.returncode == 0, restart.stdout
    for i in range(3):
        alice.post_message(room, f"while away {i}")
    page.wait_for_selector("#state[data-state=connected]", timeout=15000)
    page.wait_for_selector("#messages li:has-text('while away 2')", timeout=10000)
    assert "reconnecting" in states
    offsets = page.eval_on_selector_all("#messages li", "items => items.map(i => Number(i.dataset.offset))")
    assert offsets == [1, 2, 3, 4]
    page.screenshot(path=str(output_dir / f"browser-reconnected-{stack.config.asgi_server}.png"), full_page=True)
