"""Command line of ``scripts/stack``: ``up``, ``status``, ``logs``, ``ctl``, ``manage``."""

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from deploy.native.config import ASGI_SERVERS, CHAT_PROJECT, DEFAULT_RUN_DIR, FACTS, Project, StackConfig, StackError
from deploy.native.stack import NativeStack


def _config_from_args(args):
    if not 1 <= args.asgi_workers <= 64:
        raise StackError("--asgi-workers must be between 1 and 64")
    if not 1 <= args.redis_shards <= 16:
        raise StackError("--redis-shards must be between 1 and 16")
    return StackConfig(
        port=args.port,
        host=args.host,
        web_port=args.web_port,
        asgi_ports=[args.asgi_base_port + i for i in range(args.asgi_workers)],
        asgi_server=args.asgi_server,
        redis_port=args.redis_port,
        redis_url=os.environ.get("REDIS_URL") or None,
        redis_ha=args.redis_ha,
        redis_shard_ports=[args.redis_port + 2 + i for i in range(args.redis_shards - 1)],
        monitoring_port=args.monitoring,
        run_dir=Path(args.run_dir),
        project=Project.find(args.project, args.settings),
    )


def up(args):
    """Bring the stack up in the foreground until Ctrl-C or SIGTERM; return an exit code."""
    stack = NativeStack(_config_from_args(args))
    project = stack.config.project

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"switchyard: starting {project.directory} ({project.settings}) in {stack.run_dir} "
              f"(logs in {stack.log_dir})", flush=True)
        stack.start(timeout=args.timeout)
        workers = ", ".join(str(port) for port in stack.config.asgi_ports)
        lines = [
            f"switchyard: ready at {stack.config.url}/",
            f"  gunicorn 127.0.0.1:{stack.config.web_port}, {args.asgi_server} workers on {workers}",
            f"  WebSocket prefixes: {stack.env()['WEBSOCKET_PATH_PREFIXES']}",
        ]
        if stack.config.metrics_ports():
            lines.append("  metrics (GET /metrics): " + ", ".join(
                f"{name} 127.0.0.1:{port}" for name, port in stack.config.metrics_ports().items()))
        if stack.config.monitoring_port:
            lines.append(f"  Prometheus: http://127.0.0.1:{stack.config.monitoring_port}/ (alerts: /alerts)")
        lines.append("  status: scripts/stack status    logs: scripts/stack logs")
        print("\n".join(lines), flush=True)
        if stack.admin_password:
            print(f"  sign in as admin / {stack.admin_password} (kept in {stack.run_dir / 'admin-password'})")
        print("  Ctrl-C stops everything.", flush=True)
        stack.process.wait()
        print(f"switchyard: supervisord exited ({stack.process.returncode})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nswitchyard: stopping…", flush=True)
        stack.stop()
        return 0


def _running_stack(run_dir):
    """The stack last started in ``run_dir`` (its project from ``project.json``), for status, logs and manage."""
    recorded = Path(run_dir) / "project.json"
    if recorded.exists():
        served = json.loads(recorded.read_text())
        project = Project(Path(served["directory"]), served["settings"])
    else:
        project = Project.find(CHAT_PROJECT)
    return NativeStack(StackConfig(run_dir=Path(run_dir), project=project))


def main(argv=None):
    """Parse ``argv`` and run one command of ``scripts/stack``; return its exit code."""
    parser = argparse.ArgumentParser(prog="scripts/stack", description="Run a Django Channels project on the Switchyard stack natively.")
    parser.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="state, logs and configs (default: var/)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything in the foreground")
    p_up.add_argument("--project", default=str(CHAT_PROJECT),
                      help="the project's directory, holding manage.py (default: the bundled chat example)")
    p_up.add_argument("--settings", default=None,
                      help="the project's settings module (default: the one its manage.py sets)")
    p_up.add_argument("--port", type=int, default=8080, help="nginx port (default 8080)")
    p_up.add_argument("--host", default="127.0.0.1", help="nginx address (default 127.0.0.1)")
    p_up.add_argument("--asgi-workers", type=int, default=FACTS.int("ASGI_WORKERS"),
                      help="ASGI worker processes (default ASGI_WORKERS: %(default)s)")
    p_up.add_argument("--asgi-server", choices=ASGI_SERVERS, default="daphne", help="default daphne")
    p_up.add_argument("--web-port", type=int, default=FACTS.int("WEB_PORT"), help="gunicorn port (default %(default)s)")
    p_up.add_argument("--asgi-base-port", type=int, default=FACTS.int("ASGI_PORT"),
                      help="first ASGI worker port (default %(default)s)")
    p_up.add_argument("--redis-port", type=int, default=6380, help="Redis port (default 6380; ignored with REDIS_URL)")
    p_up.add_argument("--redis-ha", action="store_true",
                      help="also run a replica (port +1) and three sentinels (ports +20000..+20002); "
                           "clients find the primary through them")
    p_up.add_argument("--redis-shards", type=int, default=1, metavar="N",
                      help="Redis servers for the channel layer (default 1; the others on ports +2, +3, ...)")
    p_up.add_argument("--monitoring", nargs="?", type=int, const=9090, default=None, metavar="PORT",
                      help="also run Prometheus (Debian's package) scraping every process, on PORT (default 9090)")
    p_up.add_argument("--timeout", type=int, default=90, help="seconds to wait for readiness (default 90)")
    sub.add_parser("status", help="supervisorctl status of a running stack")
    p_logs = sub.add_parser("logs", help="show the log of one process (or list them)")
    p_logs.add_argument("name", nargs="?", help="process name, e.g. web, asgi-8100, nginx, redis")
    p_logs.add_argument("-f", "--follow", action="store_true")
    p_ctl = sub.add_parser("ctl", help="supervisorctl with the given arguments")
    p_ctl.add_argument("args", nargs=argparse.REMAINDER)
    p_manage = sub.add_parser("manage", help="manage.py of the running project, with the stack's environment")
    p_manage.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            return up(args)
        stack = _running_stack(args.run_dir)
    except StackError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2
    if args.command == "manage":
        return stack.manage(*args.args, check=False).returncode
    if args.command in ("status", "ctl"):
        result = stack.ctl(*(["status"] if args.command == "status" else args.args))
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
        return result.returncode
    # logs
    if not args.name:
        for path in sorted(stack.log_dir.glob("*.log")):
            print(path.name[: -len(".log")])
        return 0
    path = stack.log_dir / f"{args.name}.log"
    return subprocess.call(["tail", "-n", "200", *(["-F"] if args.follow else []), str(path)])
