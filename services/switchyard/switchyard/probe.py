"""Container and unit healthchecks: ``python -m switchyard.probe web|asgi|PORT``.

Asks ``http://127.0.0.1:PORT/healthz`` (gunicorn or an ASGI worker in the
same container) and exits 0 on 200, 1 otherwise. ``web`` and ``asgi`` name
the ports of ``defaults.env`` (``WEB_PORT``, ``ASGI_PORT``; the environment
overrides them). Standard library and django-environ only, so it runs in the
slim image without curl and without setting Django up.
"""

import sys
import urllib.error
import urllib.request


def probe(port, timeout=3.0):
    """Return True when ``/healthz`` on 127.0.0.1:``port`` (int) answers 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def port_of(name):
    """Return the port (int) named ``name``: ``"web"``, ``"asgi"`` or a number. Raises ``ValueError`` otherwise."""
    if name.isdigit():
        return int(name)
    from switchyard.defaults import env

    settings = {"web": "WEB_PORT", "asgi": "ASGI_PORT"}
    if name not in settings:
        raise ValueError(f"probe what? {name!r} is not web, asgi or a port number")
    return env().int(settings[name])


if __name__ == "__main__":
    sys.exit(0 if probe(port_of(sys.argv[1])) else 1)
