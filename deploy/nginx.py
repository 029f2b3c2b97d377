"""Render the nginx configuration from the one source in ``nginx/`` (Jinja2 templates).

The native launcher calls :func:`render` directly; Ansible's ``template`` module
and the compose image render the same files with the same variables (see
``nginx/README.md``). ``python -m deploy.nginx --help`` renders from the shell.
"""

import argparse
import json
from pathlib import Path

import jinja2
from switchyard.defaults import env

NGINX_DIR = Path(__file__).resolve().parent.parent / "nginx"
_FACTS = env()  # defaults.env under the environment: ports, ping interval, prefixes

# Variables of the templates and their defaults. ``web_servers`` and
# ``asgi_servers`` are lists of "host:port", or "host" for the default port
# (WEB_PORT, ASGI_PORT; compose names replicas this way); seconds are ints.
DEFAULTS = {
    "listen": "127.0.0.1:8080",
    # TLS: with tls_listen set, `listen` only redirects to https on https_port
    # (the public port, for the redirect's URL) and the site is served on tls_listen.
    "tls_listen": None,
    "tls_certificate": None,
    "tls_certificate_key": None,
    "https_port": 443,
    "server_name": "_",
    "web_servers": [f"127.0.0.1:{_FACTS.int('WEB_PORT')}"],
    "asgi_servers": [f"127.0.0.1:{_FACTS.int('ASGI_PORT') + i}" for i in range(_FACTS.int("ASGI_WORKERS"))],
    "static_root": "/srv/switchyard/static",
    "asgi_ping_interval": _FACTS.int("ASGI_PING_INTERVAL"),
    # URL path prefixes proxied to the ASGI pool (WEBSOCKET_PATH_PREFIXES).
    "websocket_prefixes": _FACTS.list("WEBSOCKET_PATH_PREFIXES"),
    "ws_read_timeout": None,  # default: 3 x asgi_ping_interval
    "asgi_max_fails": 0,  # refused connections before a worker is skipped; 0: never (see the template)
    "asgi_fail_timeout": 2,  # seconds a failed worker is skipped (when asgi_max_fails > 0)
    "ws_conn_per_ip": 256,  # open WebSockets per client address (then 429)
    "ws_handshake_rate": "50r/s",  # new WebSocket handshakes per client address…
    "ws_handshake_burst": 200,  # …with this burst (a reconnect storm after a restart)
    # Content-Security-Policy for responses that carry none of their own.
    "content_security_policy": "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "resolver": None,  # e.g. "127.0.0.11" for Docker's DNS; enables upstream `resolve`
    "worker_connections": 4096,
    "worker_rlimit_nofile": None,  # native nginx.conf: open files per nginx worker
    "mime_types": "/etc/nginx/mime.types",
    "run_as_user": None,
}


def context(**overrides):
    """Return the full template context (dict): :data:`DEFAULTS` updated with ``overrides``.

    Raises ``KeyError`` for a variable the templates do not know, and
    ``ValueError`` when ``ws_read_timeout`` (seconds) is not above
    ``asgi_ping_interval`` (seconds): nginx would then cut idle sockets; or
    when a WebSocket prefix is not a path that starts and ends with ``/``
    (``/`` and ``/static/`` themselves are refused: they would take every page).
    """
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise KeyError(f"unknown nginx template variables: {', '.join(sorted(unknown))}")
    values = {**DEFAULTS, **overrides}
    if values["ws_read_timeout"] is None:
        values["ws_read_timeout"] = 3 * values["asgi_ping_interval"]
    if values["ws_read_timeout"] <= values["asgi_ping_interval"]:
        raise ValueError("ws_read_timeout must be above asgi_ping_interval")
    values["websocket_prefixes"] = check_prefixes(values["websocket_prefixes"])
    # A server named by host alone listens on the shared default port.
    for key, port in (("web_servers", "WEB_PORT"), ("asgi_servers", "ASGI_PORT")):
        values[key] = [server if ":" in server else f"{server}:{_FACTS.int(port)}" for server in values[key]]
    return values


def check_prefixes(prefixes):
    """Return ``prefixes`` (a list of URL path prefixes, or one comma-separated str) as a list.

    Raises ``ValueError`` naming a prefix that is empty, does not start and
    end with ``/``, holds characters nginx would read as syntax, or is ``/``
    or ``/static/``.
    """
    if isinstance(prefixes, str):
        prefixes = [part.strip() for part in prefixes.split(",") if part.strip()]
    if not prefixes:
        raise ValueError("WEBSOCKET_PATH_PREFIXES is empty: name at least one prefix, e.g. /ws/")
    for prefix in prefixes:
        if (not prefix.startswith("/") or not prefix.endswith("/") or prefix in ("/", "/static/")
                or any(char in prefix for char in " \t;{}'\"#$")):
            raise ValueError(f"WebSocket prefix {prefix!r}: use a path like /ws/ (starts and ends with /, "
                             f"not / or /static/, no spaces, quotes or ; {{ }} # $)")
    return list(prefixes)


def _environment():
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(NGINX_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(out_dir, main=False, **overrides):
    """Write ``conf.d/*.conf`` (and with ``main=True`` an ``nginx.conf``) into ``out_dir``.

    ``out_dir`` is a path; ``main`` also renders the main context used by the
    native mode, which needs ``run_dir`` and ``log_dir`` paths passed in
    ``overrides`` too. Returns the list of written paths.
    """
    out_dir = Path(out_dir)
    conf_d = out_dir / "conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    extra = {key: overrides.pop(key) for key in ("run_dir", "log_dir") if key in overrides}
    values = context(**overrides)
    env = _environment()
    written = []
    for template in sorted((NGINX_DIR / "conf.d").glob("*.conf.j2")):
        target = conf_d / template.name[: -len(".j2")]
        target.write_text(env.get_template(f"conf.d/{template.name}").render(values))
        written.append(target)
    if main:
        target = out_dir / "nginx.conf"
        target.write_text(env.get_template("nginx.conf.j2").render(values, conf_d=conf_d, **extra))
        written.append(target)
    return written


def main(argv=None):
    """Command line: ``python -m deploy.nginx OUT_DIR [--main] [--set JSON]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--main", action="store_true", help="also write nginx.conf (native mode)")
    parser.add_argument("--set", default="{}", help="JSON object of template variables")
    args = parser.parse_args(argv)
    for path in render(args.out_dir, main=args.main, **json.loads(args.set)):
        print(path)


if __name__ == "__main__":
    main()
