"""Container and unit healthchecks: ``python -m switchyard.probe PORT``.

Asks ``http://127.0.0.1:PORT/healthz`` (gunicorn or an ASGI worker in the
same container) and exits 0 on 200, 1 otherwise. Standard library only, so it
runs in the slim image without curl.
"""

import sys
import urllib.error
import urllib.request


def probe(port, timeout=3.0):
    """Return True when ``/healthz`` on 127.0.0.1:``port`` answers 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(0 if probe(int(sys.argv[1])) else 1)
