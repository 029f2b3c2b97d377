"""gunicorn settings shared by every delivery path (``gunicorn -c gunicorn.conf.py``).

Each value can be overridden from the environment; ``--bind`` is given on the
command line by the launcher, compose or the systemd unit.
"""

import os

# Sync workers: the HTTP side is plain Django; WebSockets never reach gunicorn.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Seconds a request may take before its worker is killed and replaced.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Seconds in-flight requests get to finish after SIGTERM.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
accesslog = "-"
errorlog = "-"
# nginx on the same host or network sets X-Forwarded-*; trust it.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
