"""Render Prometheus' configuration (``deploy/prometheus/prometheus.yml.j2``) for a delivery path.

The native launcher calls :func:`render`; the compose image runs
``python -m deploy.monitoring OUT --set JSON`` at build time; Ansible's
monitoring role renders the same template. The metrics ports are the runtime's
facts (``WEB_PORT``, ``ASGI_PORT`` and ``METRICS_PORT_OFFSET`` in
``defaults.env``), never restated here.
"""

import argparse
import json
from pathlib import Path

import jinja2
from switchyard.defaults import env

PROMETHEUS_DIR = Path(__file__).resolve().parent / "prometheus"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
_FACTS = env()


def metrics_port(port):
    """Return the metrics port (int) of a process serving on ``port`` (int): ``port + METRICS_PORT_OFFSET``."""
    return port + _FACTS.int("METRICS_PORT_OFFSET")


# Template variables and their defaults. Targets are "host:port" strings; the
# *_dns_names (compose) replace them with DNS service discovery on the
# default metrics ports.
DEFAULTS = {
    "scrape_interval": "5s",
    "rule_files": [str(ALERT_RULES)],
    "web_targets": [],
    "asgi_targets": [],
    "web_dns_names": [],
    "asgi_dns_names": [],
    "web_metrics_port": metrics_port(_FACTS.int("WEB_PORT")),
    "asgi_metrics_port": metrics_port(_FACTS.int("ASGI_PORT")),
}


def render(variables=None):
    """Return ``prometheus.yml`` (str) for ``variables`` (dict, over :data:`DEFAULTS`).

    Raises ``ValueError`` for an unknown variable or when a job has neither
    targets nor DNS names (Prometheus would scrape nothing).
    """
    values = {**DEFAULTS, **(variables or {})}
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown Prometheus template variables: {', '.join(sorted(unknown))}")
    for job in ("web", "asgi"):
        if not values[f"{job}_targets"] and not values[f"{job}_dns_names"]:
            raise ValueError(f"no {job} targets: give {job}_targets or {job}_dns_names")
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMETHEUS_DIR)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    ).get_template("prometheus.yml.j2")
    return template.render(**values)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deploy.monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="file to write")
    parser.add_argument("--set", default="{}", help="template variables as a JSON object")
    args = parser.parse_args(argv)
    Path(args.out).write_text(render(json.loads(args.set)))


if __name__ == "__main__":
    main()
