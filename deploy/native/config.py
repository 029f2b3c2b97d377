"""What a native stack is: the project it serves, its ports and knobs (:class:`StackConfig`, :class:`Project`).

Defaults come from the runtime's ``defaults.env`` (the one source every
delivery path reads) under this process's environment.
"""

from dataclasses import dataclass, field
from pathlib import Path

from switchyard.defaults import env
from switchyard.project import ProjectError, settings_module

REPO = Path(__file__).resolve().parent.parent.parent
# The bundled chat example: the project served when none is named.
CHAT_PROJECT = REPO / "services" / "chat"
DEFAULT_RUN_DIR = REPO / "var"
ASGI_SERVERS = ("daphne", "uvicorn")
FACTS = env()


class StackError(RuntimeError):
    """The stack cannot start: a missing program, a busy port, a project that cannot load, a process that never got ready."""


@dataclass(frozen=True)
class Project:
    """A Django Channels project on disk, served unmodified.

    ``directory`` holds ``manage.py`` (a resolved Path); ``settings`` is its
    settings module (str, e.g. ``"mysite.settings"``).
    """

    directory: Path
    settings: str

    @classmethod
    def find(cls, directory, settings=None):
        """Return the project in ``directory`` (str or Path, anywhere on disk).

        ``settings`` (a module name) wins over the one ``manage.py`` sets.
        Raises :class:`StackError` when the directory has no ``manage.py`` or
        no settings module can be found.
        """
        directory = Path(directory).expanduser().resolve()
        if not (directory / "manage.py").is_file():
            raise StackError(f"{directory} is not a Django project: it has no manage.py")
        try:
            return cls(directory, settings or settings_module(directory))
        except ProjectError as exc:
            raise StackError(str(exc)) from exc

    @property
    def requirements(self):
        """The project's ``requirements.txt`` (a Path), or None."""
        path = self.directory / "requirements.txt"
        return path if path.is_file() else None

    @property
    def name(self):
        """A short name for messages: the directory's name."""
        return self.directory.name


def _asgi_ports():
    return [FACTS.int("ASGI_PORT") + i for i in range(FACTS.int("ASGI_WORKERS"))]


@dataclass
class StackConfig:
    """Where and how the native stack runs.

    Ports are TCP ports on 127.0.0.1 (ints). ``asgi_ports`` has one entry per
    ASGI worker. ``redis_url`` set means "use that Redis" and no Redis is
    started; otherwise ``redis_ha`` adds a replica and three sentinels
    (``redis_replica_port``, ``sentinel_ports``) and ``redis_shard_ports``
    further Redis servers that only the channel layer uses. ``extra_env`` adds or overrides environment variables of every
    Django process (settings, see ``.env.example``). ``drain_timeout``
    is in seconds. ``project`` is the :class:`Project` served (default: the
    bundled chat example).
    """

    port: int = 8080
    host: str = "127.0.0.1"
    web_port: int = field(default_factory=lambda: FACTS.int("WEB_PORT"))
    asgi_ports: list = field(default_factory=_asgi_ports)
    asgi_server: str = "daphne"
    redis_port: int = 6380
    redis_url: str = None
    # Redis HA (--redis-ha): a replica of the Redis at redis_port and three
    # sentinels watching it; every client then finds the primary through them.
    redis_ha: bool = False
    redis_replica_port: int = None  # default redis_port + 1
    sentinel_ports: list = None  # default redis_port + 20000, +20001, +20002
    # Further independent Redis servers for the channel layer only (its shards,
    # --redis-shards N starts N - 1 of them next to the main one).
    redis_shard_ports: list = field(default_factory=list)
    run_dir: Path = DEFAULT_RUN_DIR
    drain_timeout: int = field(default_factory=lambda: FACTS.int("ASGI_DRAIN_TIMEOUT"))
    # Each ASGI worker's CPU weight where gunicorn's is 100 (ASGI_CPU_WEIGHT): a nice value.
    asgi_cpu_weight: int = field(default_factory=lambda: FACTS.int("ASGI_CPU_WEIGHT"))
    extra_env: dict = field(default_factory=dict)
    # nginx template variables to override (deploy.nginx.DEFAULTS), e.g. limits for a benchmark.
    nginx: dict = field(default_factory=dict)
    # Route every HTTP request to the first ASGI worker instead of gunicorn: the
    # "one daphne serves everything" shape, for comparisons only.
    single_process: bool = False
    project: Project = field(default_factory=lambda: Project.find(CHAT_PROJECT))
    # Run Prometheus (Debian's package) on this port, scraping every process (--monitoring); None: no Prometheus.
    monitoring_port: int = None
    # Each process's /metrics is on its port + this (0: none; switchyard.metrics).
    metrics_port_offset: int = field(default_factory=lambda: FACTS.int("METRICS_PORT_OFFSET"))

    def metrics_ports(self):
        """Return ``{name: port}`` of every process's metrics endpoint (``web``, ``asgi-<port>``; empty when off)."""
        if not self.metrics_port_offset:
            return {}
        offset = self.metrics_port_offset
        ports = {"web": self.web_port + offset}
        ports.update({f"asgi-{port}": port + offset for port in self.asgi_ports})
        return ports

    def __post_init__(self):
        if self.redis_ha and self.redis_replica_port is None:
            self.redis_replica_port = self.redis_port + 1
        if self.redis_ha and self.sentinel_ports is None:
            self.sentinel_ports = [self.redis_port + 20000 + i for i in range(3)]

    @property
    def url(self):
        """Base URL of the front door (nginx), e.g. ``http://127.0.0.1:8080``."""
        return f"http://{self.host}:{self.port}"
