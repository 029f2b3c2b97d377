"""What the native stack asks of this machine: programs, free ports, ports that answer."""

import shutil
import socket
import time

from deploy.native.config import StackError


def require_program(name, package):
    """Return the path of the program ``name``; raise :class:`StackError` naming the Debian ``package`` if absent."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise StackError(f"{name} is not installed: apt-get install {package} (scripts/stack does it as root)")
    return path


def port_is_free(host, port):
    """Return True when nothing listens on ``host``:``port`` (TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port, host="127.0.0.1"):
    """Return True when something accepts TCP connections on ``host``:``port``."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for_port(port, timeout, host="127.0.0.1"):
    """Wait up to ``timeout`` seconds until ``host``:``port`` accepts; return whether it did."""
    deadline = time.monotonic() + timeout
    while not port_accepts(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
