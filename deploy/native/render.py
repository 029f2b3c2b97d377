"""The native stack's configuration files: nginx (from the one source in ``nginx/``), supervisord, Redis."""

import math
import os
import resource
import sys
from pathlib import Path

import jinja2

from deploy import monitoring, nginx
from deploy.native.system import require_program


def open_files_limit(config):
    """Open files wanted for supervisord, its children and nginx's workers: two per socket, within the hard limit."""
    wanted = 2 * int(config.nginx.get("worker_connections", nginx.DEFAULTS["worker_connections"])) + 1024
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted


def render_nginx(config, run_dir, log_dir, env):
    """Write nginx.conf and conf.d/ into ``run_dir`` for ``config`` (a StackConfig); ``env`` is the stack's environment."""
    nginx.render(
        run_dir,
        main=True,
        run_dir=str(run_dir),
        log_dir=str(log_dir),
        listen=f"{config.host}:{config.port}",
        web_servers=[f"127.0.0.1:{config.asgi_ports[0] if config.single_process else config.web_port}"],
        asgi_servers=[f"127.0.0.1:{port}" for port in config.asgi_ports],
        static_root=str(run_dir / "static"),
        asgi_ping_interval=int(env["ASGI_PING_INTERVAL"]),
        websocket_prefixes=env["WEBSOCKET_PATH_PREFIXES"],
        run_as_user="root" if os.geteuid() == 0 else None,
        **{"worker_rlimit_nofile": open_files_limit(config), **config.nginx},
    )


def nice_for_weight(weight):
    """Return the nice value (int, 0-19) whose CFS weight is ``weight`` % of nice 0's.

    ``weight`` is a CPU weight where 100 is the reference (systemd's
    CPUWeight scale; ASGI_CPU_WEIGHT). Linux's scheduler gives each nice
    step about 1.25 times less weight (``sched_prio_to_weight`` in
    kernel/sched/core.c), so 25 gives nice 6 (weight 272 of 1024). Weights
    of 100 and over give 0: raising a priority needs privileges the stack
    does not take. Raises ``ValueError`` for a weight under 1.
    """
    if weight < 1:
        raise ValueError(f"CPU weight {weight}: use 1-10000 (100 is gunicorn's)")
    if weight >= 100:
        return 0
    return min(19, round(math.log(100 / weight, 1.25)))


def redis_conf(password, replica_of=None):
    """Return a Redis data node's configuration (str): ``password`` for clients and for its primary.

    ``replica_of`` is ``(host, port)`` for a replica. ``masterauth`` is set on
    the primary too: after a failover it is made a replica of the new one.
    """
    lines = [f"requirepass {password}", f"masterauth {password}"]
    if replica_of:
        lines.append(f"replicaof {replica_of[0]} {replica_of[1]}")
    return "\n".join(lines) + "\n"


def sentinel_conf(port, primary, password, facts, bind="127.0.0.1"):
    """Return a sentinel's configuration (str) watching ``primary`` (``(host, port)``) on TCP ``port``.

    Name, quorum, ``down-after-milliseconds`` and ``failover-timeout`` are the
    ``REDIS_SENTINEL_*`` facts of ``defaults.env`` (``facts``: a
    ``switchyard.defaults`` Env). ``password`` is the data nodes' and the
    sentinels' own (``requirepass``, ``sentinel-pass`` between sentinels).
    Sentinel rewrites the file as it learns the topology, so it must be writable.
    """
    name = facts.str("REDIS_SENTINEL_MASTER")
    return "\n".join([
        f"port {port}",
        f"bind {bind}",
        f"requirepass {password}",
        f"sentinel sentinel-pass {password}",
        f"sentinel monitor {name} {primary[0]} {primary[1]} {facts.int('REDIS_SENTINEL_QUORUM')}",
        f"sentinel auth-pass {name} {password}",
        f"sentinel down-after-milliseconds {name} {facts.int('REDIS_SENTINEL_DOWN_AFTER_MS')}",
        f"sentinel failover-timeout {name} {facts.int('REDIS_SENTINEL_FAILOVER_TIMEOUT_MS')}",
        f"sentinel parallel-syncs {name} 1",
    ]) + "\n"


def _private(path, text):
    path.write_text(text)
    path.chmod(0o600)


def render_redis(config, run_dir, password, facts):
    """Write the Redis configs (mode 0600, so ``ps`` never shows the password) of ``config`` into ``run_dir``.

    ``redis.conf`` always; with ``config.redis_ha`` also ``redis-replica.conf``
    and ``sentinel-N.conf`` (N = 1..3); ``redis-shard-N.conf`` per shard port.
    """
    _private(run_dir / "redis.conf", redis_conf(password))
    if config.redis_ha:
        _private(run_dir / "redis-replica.conf", redis_conf(password, ("127.0.0.1", config.redis_port)))
        for number, port in enumerate(config.sentinel_ports, start=1):
            _private(run_dir / f"sentinel-{number}.conf",
                     sentinel_conf(port, ("127.0.0.1", config.redis_port), password, facts))
    for number, _ in enumerate(config.redis_shard_ports, start=2):
        _private(run_dir / f"redis-shard-{number}.conf", redis_conf(password))


def render_prometheus(config, run_dir):
    """Write ``run_dir/prometheus.yml`` (``deploy.monitoring``): static targets for gunicorn and every worker.

    Raises :class:`StackError` when the metrics endpoints are off.
    """
    from deploy.native.config import StackError

    ports = config.metrics_ports()
    if not ports:
        raise StackError("--monitoring needs the metrics endpoints (METRICS_PORT_OFFSET is 0)")
    (run_dir / "prometheus.yml").write_text(monitoring.render({
        "web_targets": [f"127.0.0.1:{ports['web']}"],
        "asgi_targets": [f"127.0.0.1:{port}" for name, port in ports.items() if name.startswith("asgi-")],
    }))


def render_supervisord(config, run_dir, log_dir):
    """Write ``run_dir/supervisord.conf``: Redis (unless external), gunicorn, the ASGI workers, nginx."""
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    ).get_template("supervisord.conf.j2")
    (run_dir / "supervisord.conf").write_text(
        template.render(
            run_dir=run_dir,
            log_dir=log_dir,
            as_root=os.geteuid() == 0,
            python=sys.executable,
            project_dir=config.project.directory,
            web_port=config.web_port,
            asgi_ports=config.asgi_ports,
            asgi_server=config.asgi_server,
            asgi_nice=nice_for_weight(config.asgi_cpu_weight),
            nice=require_program("nice", "coreutils"),
            drain_timeout=config.drain_timeout,
            min_fds=open_files_limit(config),
            redis_port=None if config.redis_url else config.redis_port,
            redis_replica_port=config.redis_replica_port if config.redis_ha and not config.redis_url else None,
            sentinel_ports=config.sentinel_ports if config.redis_ha and not config.redis_url else [],
            redis_shard_ports=[] if config.redis_url else config.redis_shard_ports,
            data_node_autorestart="false" if config.redis_ha else "true",
            redis_server=require_program("redis-server", "redis-server") if not config.redis_url else "",
            nginx=require_program("nginx", "nginx"),
            monitoring_port=config.monitoring_port,
            prometheus=require_program("prometheus", "prometheus") if config.monitoring_port else "",
        )
    )
