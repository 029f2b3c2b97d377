"""Process control of one native stack (:class:`NativeStack`): prepare it, start it, wait until it serves, stop it."""

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.native import render
from deploy.native.config import ASGI_SERVERS, FACTS, REPO, StackError
from deploy.native.system import port_accepts, port_is_free

# Switchyard's own lock: a project's requirements are installed under it.
LOCK = REPO / "deploy" / "requirements.txt"


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
        ports.update({f"{name}-metrics": port for name, port in self.config.metrics_ports().items()})
        if self.config.monitoring_port:
            ports["prometheus"] = self.config.monitoring_port
        if not self.config.redis_url:
            ports["redis"] = self.config.redis_port
            if self.config.redis_ha:
                ports["redis-replica"] = self.config.redis_replica_port
                ports.update({f"sentinel-{n}": port for n, port in enumerate(self.config.sentinel_ports, start=1)})
            ports.update({f"redis-shard-{n}": port for n, port in enumerate(self.config.redis_shard_ports, start=2)})
        return ports

    def _secret(self, name, nbytes=32):
        """Return a secret kept in ``run_dir/name`` (mode 0600), made on first use."""
        path = self.run_dir / name
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(nbytes))
            path.chmod(0o600)
        return path.read_text().strip()

    def redis_url(self, port=None):
        """Return the URL (str) of the stack's own Redis at ``port`` (default: the main one, through the sentinels with HA)."""
        password = self._secret("redis-password")
        if port is None and self.config.redis_ha:
            sentinels = ",".join(f"127.0.0.1:{p}" for p in self.config.sentinel_ports)
            return f"redis+sentinel://:{password}@{sentinels}/{FACTS.str('REDIS_SENTINEL_MASTER')}/0"
        return f"redis://:{password}@127.0.0.1:{port or self.config.redis_port}/0"

    def env(self):
        """Return the environment (dict) of every process of the stack.

        The shared defaults (``defaults.env``) under this process's
        environment, then the stack's own values: Switchyard's settings layer
        over the project's settings module, the project's directory on
        ``PYTHONPATH``, SQLite and static files in the run directory.
        """
        config = self.config
        project = config.project
        env = {**FACTS.ENVIRON}
        defaults = {
            "DATABASE_URL": f"sqlite:///{self.run_dir / 'db.sqlite3'}",
            "REDIS_URL": config.redis_url or self.redis_url(),
            "STATIC_ROOT": str(self.run_dir / "static"),
            "ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
        }
        if config.redis_shard_ports and not config.redis_url:
            defaults["CHANNEL_LAYER_REDIS_URLS"] = " ".join(
                [defaults["REDIS_URL"]] + [self.redis_url(port) for port in config.redis_shard_ports])
        for key, value in defaults.items():
            env.setdefault(key, value)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "switchyard.settings",
                "SWITCHYARD_PROJECT_SETTINGS": project.settings,
                "PYTHONPATH": os.pathsep.join([str(project.directory), *filter(None, [os.environ.get("PYTHONPATH")])]),
                "SECRET_KEY": env.get("SECRET_KEY") or self._secret("secret_key"),
                "ASGI_SERVER": config.asgi_server,
                "WEB_PORT": str(config.web_port),
                "METRICS_PORT_OFFSET": str(config.metrics_port_offset),
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

    def render(self):
        """Write nginx.conf, conf.d/, redis.conf and supervisord.conf into the run directory.

        Raises :class:`StackError` for a WebSocket prefix nginx cannot route.
        """
        redis_dirs = ["redis-replica", *(f"sentinel-{n}" for n in range(1, 4))] if self.config.redis_ha else []
        redis_dirs += [f"redis-shard-{n}" for n in range(2, len(self.config.redis_shard_ports) + 2)]
        redis_dirs += ["prometheus"] if self.config.monitoring_port else []
        for sub in ("log", "redis", "nginx-tmp", "static", *redis_dirs):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        try:
            render.render_nginx(self.config, self.run_dir, self.log_dir, self.env())
        except ValueError as exc:
            raise StackError(str(exc)) from exc
        if not self.config.redis_url:
            render.render_redis(self.config, self.run_dir, self._secret("redis-password"), FACTS)
        if self.config.monitoring_port:
            render.render_prometheus(self.config, self.run_dir)
        render.render_supervisord(self.config, self.run_dir, self.log_dir)

    def manage(self, *args, check=True, capture=False):
        """Run Django's ``manage.py ARGS`` for the project with the stack's environment; return the CompletedProcess.

        Runs ``python -m django`` in the project's directory (the settings
        layer is named by the environment, so the project's own manage.py is
        not needed). Raises ``subprocess.CalledProcessError`` when ``check`` and it fails.
        """
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=self.config.project.directory,
            env=self.env(),
            check=check,
            capture_output=capture,
            text=True,
        )

    def install_requirements(self):
        """Install the project's ``requirements.txt`` into this virtualenv, constrained by Switchyard's lock.

        Once per content (a stamp in the virtualenv). Raises
        :class:`StackError` with pip's last lines when pip fails (e.g. a
        requirement that conflicts with the lock).
        """
        requirements = self.config.project.requirements
        if requirements is None:
            return
        digest = hashlib.sha256(requirements.read_bytes() + LOCK.read_bytes()).hexdigest()[:16]
        stamp = Path(sys.prefix) / f".project-requirements-{digest}"
        if stamp.exists():
            return
        print(f"switchyard: installing {requirements} (constrained by {LOCK.relative_to(REPO)})", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(requirements), "-c", str(LOCK)],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
            raise StackError(f"the project's requirements cannot be installed next to Switchyard's lock:\n{tail}")
        stamp.touch()

    def preflight(self):
        """Run ``python -m switchyard.preflight`` for the project; raise :class:`StackError` with its one-line cause."""
        result = subprocess.run(
            [sys.executable, "-m", "switchyard.preflight"],
            cwd=self.config.project.directory, env=self.env(), capture_output=True, text=True,
        )
        if result.returncode != 0:
            lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            ours = [line for line in lines if line.startswith("switchyard:")]
            raise StackError((ours or lines or ["python -m switchyard.preflight failed"])[-1].removeprefix("switchyard: "))

    def prepare(self):
        """Check ports and programs, install and check the project, render configs, migrate, collect static files, make the first admin."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        busy = [f"{name} ({port})" for name, port in self.ports().items()
                if not port_is_free(self.config.host if name == "nginx" else "127.0.0.1", port)]
        if busy:
            raise StackError(f"ports already in use: {', '.join(busy)}; stop what holds them or choose other ports")
        self.install_requirements()
        self.preflight()
        self.render()
        # Which project this run directory serves, for `scripts/stack manage` while it runs.
        (self.run_dir / "project.json").write_text(json.dumps(
            {"directory": str(self.config.project.directory), "settings": self.config.project.settings}))
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
        """Wait until nginx answers ``/healthz`` with 200, every ASGI worker accepts TCP and (``redis_ha``) every sentinel knows the replica."""
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
        if self.config.redis_ha and not self.config.redis_url:
            missing = self._failover_not_ready()
            if missing:
                return missing
        try:
            with urllib.request.urlopen(f"{self.config.url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return None
        except (urllib.error.URLError, OSError):
            pass
        return "nginx /healthz"

    def _failover_not_ready(self):
        """Return what a failover still lacks (str), or None once every sentinel knows the replica as healthy.

        Sentinels learn of replicas from the primary's INFO, which they ask for
        every 10 s: a primary lost before then has no replica to promote
        (``-failover-abort-no-good-slave``; one CI run's kill 9 s after the
        start waited 16 s for a third attempt). Ready means a failover can work.
        """
        import redis

        name = FACTS.str("REDIS_SENTINEL_MASTER")
        for port in self.config.sentinel_ports:
            client = redis.Redis(port=port, password=self._secret("redis-password"), socket_timeout=1,
                                 socket_connect_timeout=1)
            try:
                replicas = client.sentinel_slaves(name)
            except redis.RedisError:
                return f"sentinel on port {port}"
            finally:
                client.close()
            if not [replica for replica in replicas if replica.get("port") == self.config.redis_replica_port
                    and not replica.get("is_sdown") and not replica.get("is_disconnected")
                    and replica.get("master-link-status") == "ok"]:
                return f"sentinel on port {port} to know the replica"
        return None

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
