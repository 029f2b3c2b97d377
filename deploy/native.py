"""The native mode: the whole split stack on this machine, no Docker.

``scripts/stack up`` (``python -m deploy.native up``) runs, in the foreground:
Redis, gunicorn, N ASGI workers (daphne or uvicorn, via ``manage.py runasgi``)
and nginx in front, supervised by supervisord (which restarts a worker that
dies). The database is SQLite in the run directory unless ``DATABASE_URL`` is
set. Ctrl-C or SIGTERM stops every process.

The stack tests start stacks through :class:`NativeStack` too, on free ports
in a temporary run directory.
"""

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from deploy import nginx

REPO = Path(__file__).resolve().parent.parent
SERVICES_DIR = REPO / "services"
DEFAULT_RUN_DIR = REPO / "var"
ASGI_SERVERS = ("daphne", "uvicorn")


class StackError(RuntimeError):
    """The stack cannot start: a missing program, a busy port, a process that never got ready."""


@dataclass
class StackConfig:
    """Where and how the native stack runs.

    Ports are TCP ports on 127.0.0.1 (ints). ``asgi_ports`` has one entry per
    ASGI worker. ``redis_url`` set means "use that Redis" and no Redis is
    started. ``extra_env`` adds or overrides environment variables of every
    Django process (settings, see ``.env.example``). ``drain_timeout``
    is in seconds.
    """

    port: int = 8080
    host: str = "127.0.0.1"
    web_port: int = 8000
    asgi_ports: list = field(default_factory=lambda: [8100, 8101])
    asgi_server: str = "daphne"
    redis_port: int = 6380
    redis_url: str = None
    run_dir: Path = DEFAULT_RUN_DIR
    drain_timeout: int = 10
    extra_env: dict = field(default_factory=dict)
    # nginx template variables to override (deploy.nginx.DEFAULTS), e.g. limits for a benchmark.
    nginx: dict = field(default_factory=dict)
    # Route every HTTP request to the first ASGI worker instead of gunicorn: the
    # "one daphne serves everything" shape, for comparisons only.
    single_process: bool = False

    @property
    def url(self):
        """Base URL of the front door (nginx), e.g. ``http://127.0.0.1:8080``."""
        return f"http://{self.host}:{self.port}"


def require_program(name, package):
    """Return the path of the program ``name``; raise :class:`StackError` naming the Debian ``package`` if absent."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise StackError(f"{name} is not installed: apt-get install {package} (scripts/stack does it as root)")
    return path


def port_is_free(host, port):
    """Return True when nothing listens on ``host``:``port`` (TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port, host="127.0.0.1"):
    """Return True when something accepts TCP connections on ``host``:``port``."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for_port(port, timeout, host="127.0.0.1"):
    """Wait up to ``timeout`` seconds until ``host``:``port`` accepts; return whether it did."""
    deadline = time.monotonic() + timeout
    while not port_accepts(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class NativeStack:
    """One native stack: prepare it, start it, wait until it serves, stop it.

    Use as a context manager (``with NativeStack(config) as stack:``) to start
    and always stop it. Raises :class:`StackError` when it cannot start.
    """

    def __init__(self, config):
        if config.asgi_server not in ASGI_SERVERS:
            raise StackError(f"--asgi-server must be one of {', '.join(ASGI_SERVERS)}")
        if not config.asgi_ports:
            raise StackError("at least one ASGI worker is needed")
        self.config = config
        self.run_dir = Path(config.run_dir).resolve()
        self.log_dir = self.run_dir / "log"
        self.process = None
        self.admin_password = None

    # --- preparation ---------------------------------------------------------

    def ports(self):
        """Return ``{name: port}`` of every port this stack binds."""
        ports = {"nginx": self.config.port, "web": self.config.web_port}
        ports.update({f"asgi-{port}": port for port in self.config.asgi_ports})
        if not self.config.redis_url:
            ports["redis"] = self.config.redis_port
        return ports

    def _secret(self, name, nbytes=32):
        """Return a secret kept in ``run_dir/name`` (mode 0600), made on first use."""
        path = self.run_dir / name
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(nbytes))
            path.chmod(0o600)
        return path.read_text().strip()

    def env(self):
        """Return the environment (dict) of every process of the stack."""
        config = self.config
        env = dict(os.environ)
        defaults = {
            "DATABASE_URL": f"sqlite:///{self.run_dir / 'db.sqlite3'}",
            "REDIS_URL": config.redis_url or f"redis://:{self._secret('redis-password')}@127.0.0.1:{config.redis_port}/0",
            "STATIC_ROOT": str(self.run_dir / "static"),
            "ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
        }
        for key, value in defaults.items():
            env.setdefault(key, value)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "switchyard.settings",
                "SECRET_KEY": env.get("SECRET_KEY") or self._secret("secret_key"),
                "ASGI_SERVER": config.asgi_server,
                # Workers drain within this; supervisord waits a little longer.
                "ASGI_DRAIN_TIMEOUT": str(config.drain_timeout),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if not (env.get("DJANGO_SUPERUSER_USERNAME") and env.get("DJANGO_SUPERUSER_PASSWORD")):
            # Nobody could sign in otherwise: make "admin" with a generated
            # password, kept in the run directory (like Jenkins' first password).
            env["DJANGO_SUPERUSER_USERNAME"] = "admin"
            env["DJANGO_SUPERUSER_PASSWORD"] = self.admin_password = self._secret("admin-password", 12)
        env.update(config.extra_env)
        return env

    def open_files_limit(self):
        """Open files wanted for supervisord, its children and nginx's workers: two per socket, within the hard limit."""
        import resource

        wanted = 2 * int(self.config.nginx.get("worker_connections", nginx.DEFAULTS["worker_connections"])) + 1024
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        return min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted

    def render(self):
        """Write nginx.conf, conf.d/ and supervisord.conf into the run directory."""
        config = self.config
        as_root = os.geteuid() == 0
        for sub in ("log", "redis", "nginx-tmp", "static"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        ping_interval = int(self.env().get("ASGI_PING_INTERVAL", "20"))
        nginx.render(
            self.run_dir,
            main=True,
            run_dir=str(self.run_dir),
            log_dir=str(self.log_dir),
            listen=f"{config.host}:{config.port}",
            web_servers=[f"127.0.0.1:{config.asgi_ports[0] if config.single_process else config.web_port}"],
            asgi_servers=[f"127.0.0.1:{port}" for port in config.asgi_ports],
            static_root=str(self.run_dir / "static"),
            asgi_ping_interval=ping_interval,
            run_as_user="root" if as_root else None,
            **{"worker_rlimit_nofile": self.open_files_limit(), **config.nginx},
        )
        if not config.redis_url:
            # The password lives in a 0600 file, not on a command line that `ps` shows.
            redis_conf = self.run_dir / "redis.conf"
            redis_conf.write_text(f"requirepass {self._secret('redis-password')}\n")
            redis_conf.chmod(0o600)
        template = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        ).get_template("supervisord.conf.j2")
        (self.run_dir / "supervisord.conf").write_text(
            template.render(
                run_dir=self.run_dir,
                log_dir=self.log_dir,
                as_root=as_root,
                python=sys.executable,
                services_dir=SERVICES_DIR,
                web_port=config.web_port,
                asgi_ports=config.asgi_ports,
                asgi_server=config.asgi_server,
                drain_timeout=config.drain_timeout,
                min_fds=self.open_files_limit(),
                redis_port=None if config.redis_url else config.redis_port,
                redis_server=require_program("redis-server", "redis-server") if not config.redis_url else "",
                nginx=require_program("nginx", "nginx"),
            )
        )

    def manage(self, *args, check=True, capture=False):
        """Run ``manage.py ARGS`` with the stack's environment; return the CompletedProcess.

        Raises ``subprocess.CalledProcessError`` when ``check`` and it fails.
        """
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=SERVICES_DIR,
            env=self.env(),
            check=check,
            capture_output=capture,
            text=True,
        )

    def prepare(self):
        """Check ports and programs, render configs, migrate, collect static files, make the first admin."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        busy = [f"{name} ({port})" for name, port in self.ports().items() if not port_is_free(self.config.host if name == "nginx" else "127.0.0.1", port)]
        if busy:
            raise StackError(f"ports already in use: {', '.join(busy)}; stop what holds them or choose other ports")
        self.render()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        self.manage("ensure_superuser")

    # --- running ---------------------------------------------------------------

    def start(self, timeout=60):
        """Prepare, start supervisord with every process, and wait until the stack serves.

        ``timeout`` in seconds. Raises :class:`StackError` (after stopping what
        started) when it is not ready in time.
        """
        self.prepare()
        supervisord = shutil.which("supervisord", path=str(Path(sys.executable).parent)) or "supervisord"
        self.process = subprocess.Popen(
            [supervisord, "-c", str(self.run_dir / "supervisord.conf")],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # our signal handler decides when it stops
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout=60):
        """Wait until nginx answers ``/healthz`` with 200 and every ASGI worker accepts TCP."""
        deadline = time.monotonic() + timeout
        pending = "nginx /healthz"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(f"supervisord exited ({self.process.returncode}); see {self.log_dir}")
            pending = self._not_ready()
            if not pending:
                return
            fatal = [line for line in self.ctl("status").stdout.splitlines() if "FATAL" in line]
            if fatal:  # supervisord gave up restarting it: waiting longer cannot help
                raise StackError(f"{fatal[0].split()[0]} could not start; see {self.log_dir}")
            time.sleep(0.2)
        raise StackError(f"not ready after {timeout}s: {pending}; logs in {self.log_dir}")

    def _not_ready(self):
        for port in self.config.asgi_ports:
            if not port_accepts(port):
                return f"ASGI worker on port {port}"
        try:
            with urllib.request.urlopen(f"{self.config.url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return None
        except (urllib.error.URLError, OSError):
            pass
        return "nginx /healthz"

    def stop(self, timeout=None):
        """Stop supervisord and every process under it (SIGTERM; SIGKILL after ``timeout`` seconds)."""
        if self.process is None or self.process.poll() is not None:
            return
        timeout = timeout or self.config.drain_timeout + 20
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def ctl(self, *args):
        """Run ``supervisorctl ARGS`` against this stack; return its CompletedProcess (text output)."""
        supervisorctl = shutil.which("supervisorctl", path=str(Path(sys.executable).parent)) or "supervisorctl"
        return subprocess.run(
            [supervisorctl, "-c", str(self.run_dir / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
        )

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


# --- command line ------------------------------------------------------------


def _config_from_args(args):
    if not 1 <= args.asgi_workers <= 64:
        raise StackError("--asgi-workers must be between 1 and 64")
    return StackConfig(
        port=args.port,
        host=args.host,
        web_port=args.web_port,
        asgi_ports=[args.asgi_base_port + i for i in range(args.asgi_workers)],
        asgi_server=args.asgi_server,
        redis_port=args.redis_port,
        redis_url=os.environ.get("REDIS_URL") or None,
        run_dir=Path(args.run_dir),
    )


def up(args):
    """Bring the stack up in the foreground until Ctrl-C or SIGTERM; return an exit code."""
    stack = NativeStack(_config_from_args(args))
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"switchyard: starting in {stack.run_dir} (logs in {stack.log_dir})", flush=True)
        stack.start(timeout=args.timeout)
        workers = ", ".join(str(port) for port in stack.config.asgi_ports)
        print(
            f"switchyard: ready at {stack.config.url}/\n"
            f"  gunicorn 127.0.0.1:{stack.config.web_port}, {args.asgi_server} workers on {workers}\n"
            f"  status: scripts/stack status    logs: scripts/stack logs",
            flush=True,
        )
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
    except StackError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 1


def main(argv=None):
    """Command line of ``scripts/stack``: ``up``, ``status``, ``logs``, ``ctl``, ``manage``."""
    parser = argparse.ArgumentParser(prog="scripts/stack", description="Run the Switchyard stack natively.")
    parser.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="state, logs and configs (default: var/)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything in the foreground")
    p_up.add_argument("--port", type=int, default=8080, help="nginx port (default 8080)")
    p_up.add_argument("--host", default="127.0.0.1", help="nginx address (default 127.0.0.1)")
    p_up.add_argument("--asgi-workers", type=int, default=2, help="ASGI worker processes (default 2)")
    p_up.add_argument("--asgi-server", choices=ASGI_SERVERS, default="daphne", help="default daphne")
    p_up.add_argument("--web-port", type=int, default=8000, help="gunicorn port (default 8000)")
    p_up.add_argument("--asgi-base-port", type=int, default=8100, help="first ASGI worker port (default 8100)")
    p_up.add_argument("--redis-port", type=int, default=6380, help="Redis port (default 6380; ignored with REDIS_URL)")
    p_up.add_argument("--timeout", type=int, default=90, help="seconds to wait for readiness (default 90)")
    sub.add_parser("status", help="supervisorctl status of a running stack")
    p_logs = sub.add_parser("logs", help="show the log of one process (or list them)")
    p_logs.add_argument("name", nargs="?", help="process name, e.g. web, asgi-8100, nginx, redis")
    p_logs.add_argument("-f", "--follow", action="store_true")
    p_ctl = sub.add_parser("ctl", help="supervisorctl with the given arguments")
    p_ctl.add_argument("args", nargs=argparse.REMAINDER)
    p_manage = sub.add_parser("manage", help="manage.py with the stack's environment")
    p_manage.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "up":
        try:
            return up(args)
        except StackError as exc:
            print(f"switchyard: {exc}", file=sys.stderr)
            return 2
    stack = NativeStack(StackConfig(run_dir=Path(args.run_dir)))
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


if __name__ == "__main__":
    sys.exit(main())
