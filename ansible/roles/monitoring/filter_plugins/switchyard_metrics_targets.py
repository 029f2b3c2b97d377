"""Filters of the monitoring role: Prometheus targets from the inventory."""


def switchyard_metrics_targets(app_hosts, hostvars, kind):
    """Return the metrics endpoints (``"address:port"`` strings) of one job, from each app host's own variables.

    ``app_hosts`` is a list of inventory host names, ``hostvars`` Ansible's
    ``hostvars``; ``kind`` is ``"web"`` (``app_gunicorn_port``) or ``"asgi"``
    (each of ``app_asgi_ports``), each plus that host's
    ``app_metrics_port_offset`` (``METRICS_PORT_OFFSET``). A host whose offset
    is 0 serves no metrics and gives no target. Addresses are the hosts'
    ``switchyard_private_address``, as in the nginx role's upstreams. Raises
    ``ValueError`` for another ``kind``.
    """
    if kind not in ("web", "asgi"):
        raise ValueError(f"kind must be 'web' or 'asgi', not {kind!r}")
    targets = []
    for host in app_hosts:
        host_vars = hostvars[host]
        offset = int(host_vars["app_metrics_port_offset"])
        if not offset:
            continue
        ports = [host_vars["app_gunicorn_port"]] if kind == "web" else host_vars["app_asgi_ports"]
        targets.extend(f"{host_vars['switchyard_private_address']}:{int(port) + offset}" for port in ports)
    return targets


class FilterModule:
    """Ansible's entry point for the filters above."""

    def filters(self):
        """Map filter names to functions."""
        return {"switchyard_metrics_targets": switchyard_metrics_targets}
