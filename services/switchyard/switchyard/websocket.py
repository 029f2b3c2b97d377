"""What guards every WebSocket route of any project: the Origin allowlist, and the connection log.

``OriginAllowlist`` is Channels' ``OriginValidator`` fed from the
``WEBSOCKET_ALLOWED_ORIGINS`` setting that logs each refused handshake with
the Origin it saw. :func:`log_connection` writes one structured (JSON) record
per connection event to the ``switchyard.connections`` logger: never message
bodies, cookies or session keys. :class:`ConnectionLog` records, for every
project, which worker accepted each socket. ``switchyard.asgi`` applies both.
"""

import logging
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings

from switchyard.worker import worker_id

connections = logging.getLogger("switchyard.connections")


def client_address(scope):
    """Return the client's address (str) from an ASGI scope (the proxy headers already applied), or ""."""
    client = scope.get("client") or ("", 0)
    return client[0] or ""


def log_connection(event, scope, **fields):
    """Log one connection event (``"accept"``, ``"reject"``, ``"close"``) as a structured record.

    ``fields`` are plain values (room, user, reason, code, origin, worker …);
    the path and client address are added from ``scope``.
    """
    connections.info(
        event,
        extra={"event": event, "path": scope.get("path", ""), "client": client_address(scope), **fields},
    )


class OriginAllowlist(OriginValidator):
    """Refuse (HTTP 403) a handshake whose Origin is not in ``WEBSOCKET_ALLOWED_ORIGINS``; log it.

    Patterns are Channels' (``"chat.example.com"``, ``".example.com"`` for
    subdomains, ``"https://chat.example.com:8443"``). A missing Origin is
    refused too: browsers always send one.
    """

    def __init__(self, application, allowed_origins=None):
        super().__init__(application, allowed_origins or settings.WEBSOCKET_ALLOWED_ORIGINS)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = dict(scope.get("headers", [])).get(b"origin")
            parsed = urlparse(origin.decode("latin-1").lower()) if origin else None
            if not self.valid_origin(parsed):
                log_connection("reject", scope, reason="origin", origin=origin.decode("latin-1") if origin else None)
        return await super().__call__(scope, receive, send)


class ConnectionLog:
    """Log ``upgrade`` (with the worker's id) when ``application`` accepts a WebSocket, whatever the project.

    ASGI middleware around any application (a consumer, a router). Event
    records: ``{"event": "upgrade", "path": ..., "client": ..., "worker": "host:pid"}``.

    A send on a socket the client already closed raises an ``OSError``
    subclass (ASGI spec 2.4: uvicorn's ``ClientDisconnected``, daphne's
    :class:`switchyard.daphne_server.ClientDisconnected`). A project's consumer
    that sends to its group as a member leaves (the Channels tutorial's shape)
    does not catch it, and the server would log "Exception inside
    application" with a traceback for an ordinary race. When that error
    comes from this socket's own ``send``, the connection ends quietly with
    one ``gone`` record; any other exception propagates unchanged.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        failed_send = None

        async def logged_send(message):
            nonlocal failed_send
            if message.get("type") == "websocket.accept":
                log_connection("upgrade", scope, worker=worker_id())
            try:
                await send(message)
            except OSError as exc:
                failed_send = exc
                raise

        try:
            return await self.application(scope, receive, logged_send)
        except OSError as exc:
            if scope["type"] != "websocket" or failed_send is None or exc is not failed_send:
                raise
            log_connection("gone", scope, reason="send after the client left")
            return None
