"""Deployment checks that Django's own ``check --deploy`` does not make.

Registered with ``deploy=True``: they run under ``python -m django check --deploy``
(compose runs it in the image's tests; Ansible before each deploy). Each has
an id ``switchyard.E00x`` and says how to fix what it found.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register

from switchyard import redis_connections
from switchyard.project import ProjectError, load_application

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
# Above this, one socket can hold a worker's memory hostage (bytes).
MAX_SANE_MESSAGE_BYTES = 1024 * 1024


@register(Tags.compatibility, deploy=True)
def check_project_applications(app_configs=None, **kwargs):
    """E001: the project's ``ASGI_APPLICATION`` and ``WSGI_APPLICATION`` must be set and load.

    Every WebSocket route of the ASGI application is put behind the Origin
    allowlist by ``switchyard.asgi``, whatever the project wraps it in.
    """
    errors = []
    for setting in ("ASGI_APPLICATION", "WSGI_APPLICATION"):
        try:
            load_application(setting)
        except ProjectError as exc:
            errors.append(Error(str(exc), hint="python -m switchyard.preflight shows the same.", id="switchyard.E001"))
    return errors


@register(Tags.security, deploy=True)
def check_no_wildcards(app_configs=None, **kwargs):
    """E002: no wildcard in ``ALLOWED_HOSTS`` or ``WEBSOCKET_ALLOWED_ORIGINS`` in production."""
    errors = []
    if "*" in settings.ALLOWED_HOSTS or "." in settings.ALLOWED_HOSTS:
        errors.append(Error("ALLOWED_HOSTS accepts any host.", hint="List your host names.", id="switchyard.E002"))
    if "*" in getattr(settings, "WEBSOCKET_ALLOWED_ORIGINS", []):
        errors.append(Error("WEBSOCKET_ALLOWED_ORIGINS accepts any Origin: cross-site WebSocket hijacking.",
                            hint="List the origins of your pages.", id="switchyard.E002"))
    return errors


@register(Tags.security, deploy=True)
def check_channel_layer(app_configs=None, **kwargs):
    """E003: the channel layer must not be in memory (it cannot reach other workers)."""
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if backend == IN_MEMORY_LAYER or not backend:
        return [Error(
            "The channel layer is in memory: messages never reach sockets on other workers or from gunicorn.",
            hint="Use switchyard.layers.RedisChannelLayer (the default) with REDIS_URL.",
            id="switchyard.E003",
        )]
    return []


@register(Tags.security, deploy=True)
def check_message_size_limit(app_configs=None, **kwargs):
    """E004: the ASGI servers must limit WebSocket message size (1 byte to 1 MiB)."""
    limit = getattr(settings, "WEBSOCKET_MAX_MESSAGE_BYTES", 0)
    if not limit or limit <= 0 or limit > MAX_SANE_MESSAGE_BYTES:
        return [Error(
            f"WEBSOCKET_MAX_MESSAGE_BYTES is {limit!r}: the ASGI servers would accept unbounded messages.",
            hint=f"Set it between 1 and {MAX_SANE_MESSAGE_BYTES} bytes (default 65536).",
            id="switchyard.E004",
        )]
    return []


@register(Tags.security, deploy=True)
def check_redis_password(app_configs=None, **kwargs):
    """E005: outside DEBUG, every Redis URL (``REDIS_URL``, the layer's hosts, Sentinel ones too) must carry a password."""
    if settings.DEBUG:
        return []
    missing = []
    if not redis_connections.parse_url(settings.REDIS_URL).password:
        missing.append(settings.REDIS_URL)
    for host in settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG", {}).get("hosts", []):
        if isinstance(host, dict) and "address" not in host:  # the Sentinel or host/port form
            if not host.get("password"):
                missing.append(host)
        elif isinstance(host, (str, dict)) and not urlsplit(host if isinstance(host, str) else host["address"]).password:
            missing.append(host)
    if missing:
        return [Error(
            "A Redis URL has no password: anyone who reaches Redis can read and inject channel-layer messages.",
            hint="Use redis://:<password>@host:6379/0 (or redis+sentinel://:<password>@...) and requirepass "
                 "(or an ACL user) on the server.",
            id="switchyard.E005",
        )]
    return []
