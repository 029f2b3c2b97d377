"""gunicorn settings shared by every delivery path (``gunicorn -c python:switchyard.gunicorn_conf``).

Each value can be overridden from the environment (defaults from
``defaults.env``); the launcher, compose and the systemd unit all start
gunicorn with this module and no other flags.
"""

import os

from switchyard.defaults import env

_env = env()

# Address and port (WEB_PORT) gunicorn listens on: loopback natively, all
# addresses in a container (BIND_ADDRESS=0.0.0.0), the private one on a host.
bind = [f"{_env.str('BIND_ADDRESS', default='127.0.0.1')}:{_env.int('WEB_PORT')}"]
# Sync workers: the HTTP side is plain Django; WebSockets never reach gunicorn.
workers = _env.int("WEB_CONCURRENCY")
# Seconds a request may take before its worker is killed and replaced.
timeout = _env.int("GUNICORN_TIMEOUT", default=30)
# Seconds in-flight requests get to finish after SIGTERM.
graceful_timeout = _env.int("GUNICORN_GRACEFUL_TIMEOUT", default=20)
accesslog = "-"
errorlog = "-"
# nginx on the same host or network sets X-Forwarded-*; trust it.
forwarded_allow_ips = _env.str("FORWARDED_ALLOW_IPS", default="127.0.0.1")
# gunicorn 27's control socket lives under $HOME, which is the read-only
# project directory in the image; nothing here uses it.
control_socket_disable = True
# Development (compose.dev.yaml): restart workers on code changes.
reload = _env.bool("GUNICORN_RELOAD", default=False)

# --- Metrics (switchyard.metrics) ----------------------------------------------
# prometheus_client's multi-process mode: each worker writes its metrics to
# files in this directory (set, and emptied of a previous run's files, before
# anything imports prometheus_client); the master serves their sum on
# WEB_PORT + METRICS_PORT_OFFSET (0: off). The master itself records nothing.
_metrics_port = _env.int("WEB_PORT") + _env.int("METRICS_PORT_OFFSET") if _env.int("METRICS_PORT_OFFSET") else 0
_multiproc_dir = _env.str(
    "PROMETHEUS_MULTIPROC_DIR", default=f"{_env.str('TMPDIR', default='/tmp')}/switchyard-gunicorn-{_env.int('WEB_PORT')}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiproc_dir
os.makedirs(_multiproc_dir, exist_ok=True)
for _name in os.listdir(_multiproc_dir):
    if _name.endswith(".db"):
        os.unlink(os.path.join(_multiproc_dir, _name))


def when_ready(server):
    """Serve the workers' summed metrics from the master (prometheus_client's multi-process collector)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    if not _metrics_port:
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    address = _env.str("BIND_ADDRESS", default="127.0.0.1")
    try:
        start_http_server(_metrics_port, addr=address, registry=registry)
    except OSError as exc:
        server.log.error("metrics: cannot listen on %s:%s (%s); gunicorn serves no metrics", address, _metrics_port, exc)


def post_worker_init(worker):
    """Sample this worker's CPU and RSS into its per-pid gauges (switchyard.metrics)."""
    from switchyard import metrics

    metrics.start_process_sampler()


def child_exit(server, worker):
    """Drop a dead worker's live gauges (prometheus_client's multi-process rule)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
