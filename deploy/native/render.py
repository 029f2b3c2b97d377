"""The native stack's configuration files: nginx (from the one source in ``nginx/``), supervisord, Redis."""

import os
import resource
import sys
from pathlib import Path

import jinja2

from deploy import nginx
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


def render_redis(run_dir, password):
    """Write ``run_dir/redis.conf`` (mode 0600) holding the password, so that ``ps`` never shows it."""
    redis_conf = run_dir / "redis.conf"
    redis_conf.write_text(f"requirepass {password}\n")
    redis_conf.chmod(0o600)


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
            drain_timeout=config.drain_timeout,
            min_fds=open_files_limit(config),
            redis_port=None if config.redis_url else config.redis_port,
            redis_server=require_program("redis-server", "redis-server") if not config.redis_url else "",
            nginx=require_program("nginx", "nginx"),
        )
    )
