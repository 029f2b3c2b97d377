"""``scripts/stack up`` itself, as a newcomer runs it: ready message, serving, clean stop."""

import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests

from deploy.native import port_is_free
from tests.conftest import free_ports

REPO = Path(__file__).resolve().parent.parent.parent


def consecutive_free_ports(count):
    for _ in range(50):
        base = free_ports(1)[0]
        if base + count < 65536 and all(port_is_free("127.0.0.1", base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def test_stack_up_prints_the_url_serves_and_stops_everything_on_sigterm(tmp_path):
    nginx, web, redis = free_ports(3)
    asgi_base = consecutive_free_ports(2)
    command = [
        str(REPO / "scripts" / "stack"), "--run-dir", str(tmp_path), "up",
        "--port", str(nginx), "--web-port", str(web), "--redis-port", str(redis),
        "--asgi-base-port", str(asgi_base), "--asgi-workers", "2", "--asgi-server", "uvicorn",
    ]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in launcher.stdout], daemon=True).start()
    output = []
    try:
        deadline = time.monotonic() + 120
        while not any("ready at" in line for line in output):
            assert time.monotonic() < deadline, "no ready line:\n" + "".join(output)
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                assert launcher.poll() is None, "launcher exited:\n" + "".join(output)
        time.sleep(0.5)
        while not lines.empty():
            output.append(lines.get())
        text = "".join(output)
        assert f"http://127.0.0.1:{nginx}/" in text
        assert "sign in as admin / " in text
        password = (tmp_path / "admin-password").read_text().strip()
        assert password in text
        assert requests.get(f"http://127.0.0.1:{nginx}/healthz", timeout=10).status_code == 200
    finally:
        launcher.send_signal(signal.SIGTERM)
        code = launcher.wait(60)
    assert code == 0
    # Every process it started is gone: all its ports are free again.
    for port in (nginx, web, redis, asgi_base, asgi_base + 1):
        assert port_is_free("127.0.0.1", port), f"port {port} still held after stop"
