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
    does not catch it: the exception would end the consumer before it reads
    the ``websocket.disconnect`` already queued for it, so its
    ``disconnect()`` and Channels' ``group_discard`` would never run, and the
    server would log "Exception inside application" for an ordinary race.
    Here such a send is dropped instead (the client is gone; nothing can
    reach it), with one ``gone`` record per connection; the consumer then
    receives the disconnect and cleans up as usual. Every other message, and
    every exception of the application, passes unchanged.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        gone = False

        async def logged_send(message):
            nonlocal gone
            if message.get("type") == "websocket.accept":
                log_connection("upgrade", scope, worker=worker_id())
            if gone:
                return
            try:
                await send(message)
            except OSError:
                if scope["type"] != "websocket":
                    raise
                gone = True
                log_connection("gone", scope, reason="send after the client left", dropped=message.get("type"))

        return await self.application(scope, receive, logged_send)
