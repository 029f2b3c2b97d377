"""Filters of the nginx role: upstream server lists from the inventory."""


def switchyard_upstreams(app_hosts, hostvars, kind, drained=()):
    """Return the ``server`` lines' addresses for one upstream, as a list of strings.

    ``app_hosts`` is a list of inventory host names, ``hostvars`` Ansible's
    ``hostvars``; ``kind`` is ``"web"`` (each host's ``app_gunicorn_port``) or
    ``"asgi"`` (each port in its ``app_asgi_ports``). Addresses are the hosts'
    ``switchyard_private_address``. Hosts in ``drained`` get nginx's ``down``
    parameter: no new requests or sockets reach them, open ones stay.
    Raises ``ValueError`` for another ``kind``.
    """
    if kind not in ("web", "asgi"):
        raise ValueError(f"kind must be 'web' or 'asgi', not {kind!r}")
    servers = []
    for host in app_hosts:
        host_vars = hostvars[host]
        address = host_vars["switchyard_private_address"]
        ports = [host_vars["app_gunicorn_port"]] if kind == "web" else host_vars["app_asgi_ports"]
        down = " down" if host in drained else ""
        servers.extend(f"{address}:{int(port)}{down}" for port in ports)
    return servers


class FilterModule:
    """Ansible's entry point for the filters above."""

    def filters(self):
        """Map filter names to functions."""
        return {"switchyard_upstreams": switchyard_upstreams}
