"""gunicorn settings shared by every delivery path (``gunicorn -c python:switchyard.gunicorn_conf``).

Each value can be overridden from the environment (defaults from
``defaults.env``); the launcher, compose and the systemd unit all start
gunicorn with this module and no other flags.
"""

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
