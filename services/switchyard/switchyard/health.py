"""``GET /healthz``: whether this process can reach its dependencies.

Answers 200 ``{"status": "ok", "checks": {...}}`` only while both the database
and Redis answer (``REDIS_URL``'s primary and every other channel-layer
shard); otherwise 503 with ``"status": "unavailable"`` and, per
dependency, ``"ok"`` or the name of the error. Load balancers, compose
healthchecks and the native launcher all poll it.

:class:`HealthCheckMiddleware` answers it before any other middleware, so a
probe by IP address (a container healthcheck, a load balancer) is not turned
away by ``ALLOWED_HOSTS``, and it works on gunicorn and on the ASGI workers.
"""

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from switchyard import redis_connections

_redis_clients = {}


def _redis(url):
    """Return this process's ``redis.Redis`` for ``url`` (made on first use, :data:`redis_connections.HEALTH_TIMEOUT`)."""
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis_connections.sync_client(url, timeout=redis_connections.HEALTH_TIMEOUT)
    return client


def check_database():
    """Run ``SELECT 1`` on the default database; return ``"ok"`` or the error's class name."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the name tells which
        connection.close_if_unusable_or_obsolete()
        return type(exc).__name__
    return "ok"


def check_redis(url=None):
    """Send ``PING`` to the Redis of ``url`` (default ``REDIS_URL``; through the sentinels for a Sentinel URL).

    Returns ``"ok"`` or the error's class name (str).
    """
    try:
        _redis(url or settings.REDIS_URL).ping()
    except redis.RedisError as exc:
        return type(exc).__name__
    return "ok"


def checks():
    """Return ``{dependency: "ok" or error name}``: the database, ``REDIS_URL``, and each other channel-layer shard."""
    results = {"database": check_database(), "redis": check_redis()}
    shards = [url for url in settings.CHANNEL_LAYER_REDIS_URLS if url != settings.REDIS_URL]
    for index, url in enumerate(shards, start=1):
        results[f"channel_layer_shard_{index}"] = check_redis(url)
    return results


@never_cache
def healthz(request):
    """Answer 200 when the database and Redis both answer, else 503 (JSON body)."""
    results = checks()
    healthy = all(result == "ok" for result in results.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": results},
        status=200 if healthy else 503,
    )


class HealthCheckMiddleware:
    """Answer ``GET /healthz`` first, before host validation; pass everything else on.

    Must be the first entry of ``MIDDLEWARE``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return healthz(request)
        return self.get_response(request)
