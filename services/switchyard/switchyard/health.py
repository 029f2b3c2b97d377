"""``GET /healthz``: whether this process can reach its dependencies.

Answers 200 ``{"status": "ok", "checks": {...}}`` only while both the database
and Redis answer; otherwise 503 with ``"status": "unavailable"`` and, per
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

# Seconds a Redis probe may take before the dependency counts as down.
REDIS_TIMEOUT = 1.0

_redis_client = None


def _redis():
    """Return a process-wide Redis client for ``settings.REDIS_URL`` (lazily made)."""
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
    return _redis_client


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


def check_redis():
    """Send ``PING`` to Redis; return ``"ok"`` or the error's class name."""
    try:
        _redis().ping()
    except redis.RedisError as exc:
        return type(exc).__name__
    return "ok"


@never_cache
def healthz(request):
    """Answer 200 when the database and Redis both answer, else 503 (JSON body)."""
    checks = {"database": check_database(), "redis": check_redis()}
    healthy = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
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
