"""Every Redis connection Switchyard makes: one parser, one set of timeouts, one key prefix.

Redis is named by one URL setting, ``REDIS_URL``, in one of two forms:

``redis://[:PASSWORD@]HOST:PORT/DB`` (``rediss://`` for TLS)
    one Redis server.
``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]``
    a Sentinel-managed primary: the hosts are the sentinels, ``MASTER`` the
    name they monitor it by. Clients ask the sentinels for the primary at
    every new connection, so they follow a failover without a restart. The
    password is the data nodes' ``requirepass``; the sentinels are asked with
    the same password unless ``?sentinel_password=`` gives another one. (The
    scheme is the one the ``limits`` library uses; Celery's is ``sentinel://``.)

``CHANNEL_LAYER_REDIS_URLS`` (URLs of either form separated by spaces;
default: ``REDIS_URL`` alone) are the channel layer's shards. channels_redis spreads
channels and groups over them by consistent hashing
(``channels_redis.core.RedisChannelLayer.consistent_hash``); presence, rate
limits and ``/healthz`` use ``REDIS_URL``.

Who connects where (all through this module):

========================  =============================  ==============================
caller                    function                       read timeout (seconds)
========================  =============================  ==============================
channel layer             :func:`channel_layer_hosts`    :data:`LAYER_READ_TIMEOUT` (the fan-out layer's
                                                         publishes: :data:`PUBLISH_TIMEOUT`)
presence (chat)           :func:`async_client`           :data:`READ_TIMEOUT`
rate limits (chat)        :func:`limits_storage`         :data:`READ_TIMEOUT`
``/healthz``              :func:`sync_client`            :data:`HEALTH_TIMEOUT`
========================  =============================  ==============================
"""

import dataclasses
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff

# Seconds to open a TCP connection (to a sentinel or a data node) before it counts
# as down. Redis sits on the same LAN: a connect takes well under a millisecond,
# and a node that vanished (its container or host gone, so nothing answers with
# a reset) costs every caller this long. At 2 s, a consumer checking a rate
# limit against a killed primary's address held its socket's next frames that
# long (compose HA fault test: 40 frames unacknowledged; docs/reliability.md).
CONNECT_TIMEOUT = 0.5
# Seconds a command may wait for its reply. Above channels_redis' 5 s BZPOPMIN for
# the channel layer (redis-py 8's default 5 s would fail idle receives with
# "Timeout reading"); presence and rate limits send one-millisecond commands.
LAYER_READ_TIMEOUT = 15.0
READ_TIMEOUT = 2.0
# Connections each pool (one per client: channel layer, presence, rate limits;
# per process, per Redis, per event loop) may hold at once. redis-py 8 caps a pool at 100 and then raises
# MaxConnectionsError instead of waiting, and every channel-layer command of a
# handshake (group_add) takes one: a burst of 100 concurrent handshakes on one
# worker closed some of them with 1013 ("Too many connections", scripts/bench
# with uvicorn; docs/benchmarks.md). A connection lives only for its command, so
# the pool holds about (commands/s x reply time) of them; this bounds a reconnect
# storm's worst case per worker. Redis' own maxclients (10000 by default) must
# cover this x ASGI workers x the pools on that server (up to 3 on REDIS_URL's),
# in the worst case; in steady state a pool holds a handful.
MAX_CONNECTIONS = 1000
# Seconds the fan-out layer's PUBLISH may wait for its reply (switchyard.fanout): it answers in
# a millisecond on the same LAN, and a sender waiting on a vanished primary holds its socket's
# next frames (the compose HA kill counted them unacknowledged); past this the socket closes
# with 1013 and its client resends after the reconnect.
PUBLISH_TIMEOUT = 0.5
# Seconds a /healthz probe may take: a load balancer polls it, a slow answer is "down".
HEALTH_TIMEOUT = 1.0
# Seconds a sentinel may take to answer "where is the primary?"; past it the next one is asked.
SENTINEL_TIMEOUT = 1.0
# Retries of a command that fails on a lost connection, after redis-py's
# exponential backoff with full jitter (base and cap in seconds: a random wait
# up to 0.1 s, then up to 0.2 s): only for
# presence's background work (heartbeats, announcements). What sits in front
# of a socket's frames (the channel layer, rate limits) and /healthz fail at
# once instead: the socket closes with 1013 and recovers by offset, which is
# faster than waiting behind a dead primary. redis-py 8's own default (10
# retries up to 1 s apart) held each consumer ~5 s per command, and ~5 s per
# dead sentinel asked (docs/reliability.md, "Redis HA"). Sentinels are asked
# once each: the next sentinel is the retry.
RETRIES = 2
RETRY_BACKOFF = (0.05, 0.5)

SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


class RedisURLError(ValueError):
    """A Redis URL Switchyard cannot use; the message names the URL's problem (never its password)."""


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """Where one Redis lives, parsed from a URL by :func:`parse_url`.

    ``url`` is the URL as given. For a plain server ``sentinels`` is empty;
    for a Sentinel-managed one it holds ``(host, port)`` pairs, ``master`` the
    monitored name, ``db`` the database number, ``password`` the data nodes'
    password and ``sentinel_password`` the sentinels' (both ``None`` when
    absent).
    """

    url: str
    sentinels: tuple = ()
    master: str = None
    db: int = 0
    username: str = None
    password: str = None
    sentinel_password: str = None

    @property
    def is_sentinel(self):
        """True when the URL names sentinels rather than a server."""
        return bool(self.sentinels)

    def describe(self):
        """Return the target without secrets (str), for logs and errors."""
        if self.is_sentinel:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"{SENTINEL_SCHEME}://{hosts}/{self.master}/{self.db}"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{':%s' % parts.port if parts.port else ''}{parts.path}"


def parse_url(url):
    """Parse a Redis URL (str, either form in the module docstring) into a :class:`RedisTarget`.

    Raises :class:`RedisURLError` for an unknown scheme, a Sentinel URL
    without hosts or master name, or a database that is not a number.
    """
    parts = urlsplit(url)
    if parts.scheme in SCHEMES:
        return RedisTarget(url=url, password=parts.password and unquote(parts.password))
    if parts.scheme != SENTINEL_SCHEME:
        raise RedisURLError(f"Redis URL scheme {parts.scheme!r} is not one of {', '.join(SCHEMES + (SENTINEL_SCHEME,))}")
    credentials, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    sentinels = []
    for item in filter(None, hostlist.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep or host.count("[") != host.count("]"):
            host, port = item, ""
        host = host.strip("[]")
        if not host or (":" in host and not item.startswith("[")) or not (port.isdigit() or not port):
            # Never echo the item: a password with a "#" or "/" in it ends up here.
            raise RedisURLError(f"sentinel address number {len(sentinels) + 1} is not HOST:PORT "
                                "(IPv6 in brackets; characters such as # / ? @ in the password percent-encoded)")
        sentinels.append((host, int(port) if port else DEFAULT_SENTINEL_PORT))
    path = [segment for segment in parts.path.split("/") if segment]
    if not sentinels or not path:
        raise RedisURLError("a redis+sentinel:// URL needs sentinel HOST:PORT pairs and the master's name: "
                            "redis+sentinel://:PASSWORD@HOST:PORT,HOST:PORT/MASTER/DB")
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError:
        raise RedisURLError(f"database {path[1]!r} of a redis+sentinel:// URL is not a number") from None
    query = parse_qs(parts.query)
    password = unquote(password) or None
    sentinel_password = query.get("sentinel_password", [password])[0]
    return RedisTarget(url=url, sentinels=tuple(sentinels), master=unquote(path[0]), db=db,
                       username=unquote(username) or None, password=password, sentinel_password=sentinel_password)


def _targets(url):
    return parse_url(url) if isinstance(url, str) else url


def _default_url():
    from django.conf import settings

    return settings.REDIS_URL


def _retry(asynchronous, retries=RETRIES):
    """A redis-py ``Retry`` (``redis.asyncio.retry.Retry`` when ``asynchronous``) of ``retries`` attempts."""
    retry_class = redis.asyncio.retry.Retry if asynchronous else redis.retry.Retry
    if not retries:
        return retry_class(NoBackoff(), 0)
    return retry_class(ExponentialWithJitterBackoff(base=RETRY_BACKOFF[0], cap=RETRY_BACKOFF[1]), retries)


def _sentinel_kwargs(target, asynchronous):
    kwargs = {"socket_connect_timeout": min(CONNECT_TIMEOUT, SENTINEL_TIMEOUT), "socket_timeout": SENTINEL_TIMEOUT,
              "retry": _retry(asynchronous, 0)}
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    return kwargs


def _connection_kwargs(timeout, asynchronous, retries):
    """Every client's connection options (dict): :data:`CONNECT_TIMEOUT`, reads bounded by ``timeout``
    seconds, ``retries`` retries (:func:`_retry`), pools of at most :data:`MAX_CONNECTIONS`."""
    return {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": timeout,
            "retry": _retry(asynchronous, retries), "max_connections": MAX_CONNECTIONS}


def _node_kwargs(target, timeout, asynchronous, retries=RETRIES):
    kwargs = {**_connection_kwargs(timeout, asynchronous, retries), "db": target.db}
    if target.password:
        kwargs["password"] = target.password
    if target.username:
        kwargs["username"] = target.username
    return kwargs


def _client(asynchronous, url, timeout, retries):
    """A redis-py client (``redis.asyncio`` when ``asynchronous``) for ``url``; see :func:`sync_client`."""
    target = _targets(url or _default_url())
    if not target.is_sentinel:
        client_class = redis.asyncio.Redis if asynchronous else redis.Redis
        return client_class.from_url(target.url, **_connection_kwargs(timeout, asynchronous, retries))
    sentinel_class = redis.asyncio.sentinel.Sentinel if asynchronous else redis.sentinel.Sentinel
    sentinel = sentinel_class(list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target, asynchronous))
    return sentinel.master_for(target.master, **_node_kwargs(target, timeout, asynchronous, retries))


def sync_client(url=None, timeout=HEALTH_TIMEOUT, retries=0):
    """Return a ``redis.Redis`` for ``url`` (default ``settings.REDIS_URL``), reads bounded by ``timeout`` seconds.

    ``retries``: attempts after a connection error (see :data:`RETRIES`).

    A Sentinel URL gives a client of the current primary (``Sentinel.master_for``):
    each new connection asks the sentinels, and a connection to a node that
    was demoted raises ``redis.ConnectionError`` and is dropped.
    """
    return _client(False, url, timeout, retries)


def async_client(url=None, timeout=READ_TIMEOUT, retries=RETRIES):
    """Return a ``redis.asyncio.Redis`` for ``url`` (default ``settings.REDIS_URL``); see :func:`sync_client`."""
    return _client(True, url, timeout, retries)


def channel_layer_host(url):
    """Return channels_redis' ``hosts`` entry (dict) for one URL.

    A plain URL gives ``{"address": url, ...}``; a Sentinel URL gives
    channels_redis' Sentinel form ``{"sentinels": [(host, port)],
    "master_name": ..., "sentinel_kwargs": {...}, ...}``
    (``channels_redis.utils.create_pool``). Timeouts: :data:`CONNECT_TIMEOUT`,
    :data:`LAYER_READ_TIMEOUT`; no retries (see :data:`RETRIES`); pools of at
    most :data:`MAX_CONNECTIONS`.
    """
    target = _targets(url)
    if not target.is_sentinel:
        return {"address": target.url, **_connection_kwargs(LAYER_READ_TIMEOUT, True, 0)}
    return {
        "sentinels": list(target.sentinels),
        "master_name": target.master,
        "sentinel_kwargs": _sentinel_kwargs(target, True),
        **_node_kwargs(target, LAYER_READ_TIMEOUT, True, 0),
    }


def channel_layer_hosts(urls):
    """Return the channel layer's ``hosts`` list (one dict per shard) for ``urls`` (list of str)."""
    return [channel_layer_host(url) for url in urls]


def limits_storage(url=None, key_prefix=None):
    """Return a ``limits.aio.storage`` for ``url`` (default ``settings.REDIS_URL``), keys under ``key_prefix``.

    ``RedisStorage`` for a plain URL, ``RedisSentinelStorage`` (reads from the
    primary too, so a limit never lags behind replication) for a Sentinel URL.
    No retries: a rate-limit check sits in front of every chat message, and the
    caller fails open on an error; retrying would hold the socket's next
    frames back while Redis is gone.
    """
    from limits.aio.storage import RedisSentinelStorage, RedisStorage

    target = _targets(url or _default_url())
    key_prefix = key_prefix or f"{key_prefix_setting()}-ratelimit"
    if not target.is_sentinel:
        scheme = "async+redis+" if target.url.startswith("unix://") else "async+"  # limits' name for a socket
        return RedisStorage(scheme + target.url, implementation="redispy", key_prefix=key_prefix,
                            **_connection_kwargs(READ_TIMEOUT, True, 0))
    hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in target.sentinels)
    return RedisSentinelStorage(
        f"async+{SENTINEL_SCHEME}://{hosts}/{target.master}", implementation="redispy", key_prefix=key_prefix,
        use_replicas=False, sentinel_kwargs=_sentinel_kwargs(target, True),
        # Without the username: limits hands the nodes' credentials to the sentinels too.
        **{k: v for k, v in _node_kwargs(target, READ_TIMEOUT, True, retries=0).items() if k != "username"},
    )


def key_prefix_setting():
    """Return the prefix (str) of every Redis key Switchyard writes: the channel layer's ``prefix``."""
    from django.conf import settings

    return settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG", {}).get("prefix", "switchyard")
