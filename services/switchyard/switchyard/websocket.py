"""What guards every WebSocket route of any project: the Origin allowlist, and the connection log.

``OriginAllowlist`` is Channels' ``OriginValidator`` fed from the
``WEBSOCKET_ALLOWED_ORIGINS`` setting that logs each refused handshake with
the Origin it saw. :func:`log_connection` writes one structured (JSON) record
per connection event to the ``switchyard.connections`` logger: never message
bodies, cookies or session keys. :class:`ConnectionLog` records, for every
project, which worker accepted each socket. ``switchyard.asgi`` applies both.
"""

import asyncio
import contextvars
import logging
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings

from switchyard import metrics
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
    if event == "reject":
        state = _current.get()
        if state is not None:
            state.refused(fields.get("reason"))
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
                route = metrics.route_label(scope.get("path", ""), settings.WEBSOCKET_PATH_PREFIXES)
                metrics.WEBSOCKET_HANDSHAKES.labels(route, "refused", "origin").inc()
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
        if scope["type"] != "websocket":
            return await self.application(scope, receive, send)
        gone = False
        state = _ConnectionState(metrics.route_label(scope.get("path", ""), settings.WEBSOCKET_PATH_PREFIXES))
        token = _current.set(state)

        async def logged_send(message):
            nonlocal gone
            kind = message.get("type")
            if kind == "websocket.accept":
                log_connection("upgrade", scope, worker=worker_id())
                state.accepted()
            elif kind == "websocket.send":
                state.frame("out", message)
            elif kind == "websocket.close":
                state.closed("server", message.get("code", 1000))
            if gone:
                return
            try:
                await send(message)
            except OSError:
                gone = True
                log_connection("gone", scope, reason="send after the client left", dropped=kind)

        async def counted_receive():
            message = await receive()
            kind = message.get("type")
            if kind == "websocket.receive":
                state.frame("in", message)
            elif kind == "websocket.disconnect":
                state.closed("client", message.get("code", 1005))
            return message

        try:
            return await self.application(scope, counted_receive, logged_send)
        finally:
            state.ended()
            _current.reset(token)


# Close code for a client that stopped reading (docs/protocol.md): reconnect and resume by offset.
CLOSE_SLOW_READER = 4408


class SlowReaderGuard:
    """Close a socket whose client stops taking frames, instead of letting its frames pile up in the worker.

    uvicorn makes ``send()`` wait while the socket's write buffer is full, so
    a consumer sending to a client that stopped reading waits, and the
    messages meant for it pile up in its channel-layer buffer. Here a
    ``websocket.send`` that has waited ``WEBSOCKET_SLOW_READER_SECONDS``
    (default 10; 0 turns the guard off) ends the socket: one ``close`` record (``reason:
    "slow_reader"``, ``code: 4408``), ``switchyard_websocket_slow_reader_closes_total``,
    a close frame with 4408, and every later send of the application dropped
    until the server reports the disconnect. daphne's ``send()`` never waits
    (it buffers in memory): ``switchyard.daphne_server`` bounds that side.
    """

    def __init__(self, application, timeout=None):
        self.application = application
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        timeout = self.timeout if self.timeout is not None else settings.WEBSOCKET_SLOW_READER_SECONDS
        if scope["type"] != "websocket" or not timeout:
            return await self.application(scope, receive, send)
        slow = False

        async def guarded_send(message):
            nonlocal slow
            if slow:
                return  # the socket is being closed for reading too slowly: nothing more goes out
            if message.get("type") != "websocket.send":
                return await send(message)
            try:
                async with asyncio.timeout(timeout):  # no task per send (asyncio.wait_for makes one)
                    return await send(message)
            except TimeoutError:
                slow = True
            log_connection("close", scope, code=CLOSE_SLOW_READER, reason="slow_reader", waited_seconds=timeout)
            metrics.SLOW_READER_CLOSES.inc()
            # Not awaited under a timeout: the server bounds its own close (websockets' close_timeout,
            # then it fails the connection), and cancelling it would leave the socket half closed.
            closing = asyncio.ensure_future(send({"type": "websocket.close", "code": CLOSE_SLOW_READER}))
            closing.add_done_callback(_ignore_outcome)

        return await self.application(scope, receive, guarded_send)


def _ignore_outcome(task):
    """Retrieve a background close's outcome (the client may be gone): never "exception was never retrieved"."""
    if not task.cancelled():
        task.exception()


# What Channels' outermost URLRouter raises when no route matches a path
# (channels/routing.py, URLRouter.__call__; tests/test_upstream.py checks it).
NO_ROUTE_PREFIX = "No route found for path"


class RefuseUnknownRoutes:
    """Answer a WebSocket handshake on a path no route of the project matches with 403 and one ``reject`` record.

    Channels' ``URLRouter`` raises ``ValueError("No route found for path ...")``
    for such a path; the ASGI server would answer HTTP 500 and log a
    traceback for every attempt, so anyone could fill the workers' logs at the
    handshake rate limit. Here the handshake is refused instead (the
    application closes before accepting: both servers answer 403) with a
    ``reject`` record, ``reason: "no_route"``. Any other exception passes.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        answered = False

        async def watched_send(message):
            nonlocal answered
            answered = True
            await send(message)

        try:
            return await self.application(scope, receive, watched_send)
        except ValueError as exc:
            if scope["type"] != "websocket" or answered or not str(exc).startswith(NO_ROUTE_PREFIX):
                raise
        log_connection("reject", scope, reason="no_route")
        try:  # the websocket.connect the router never read (unless the project's middleware did)
            async with asyncio.timeout(1):
                await receive()
        except TimeoutError:
            pass
        await send({"type": "websocket.close", "code": 1000})


class _ConnectionState:
    """What the metrics need to know of one WebSocket while its application runs (``switchyard.metrics``).

    A handshake is counted once: ``accepted`` when the application accepts
    it, else ``refused`` with the reason the application logged
    (:func:`log_connection` ``"reject"``; ``"application"`` when it logged
    none). A project that accepts and then closes at once with a refusal
    code (the chat's 4403 and 1008) logs its ``reject`` before the accept, so
    it counts as refused too.
    """

    def __init__(self, route):
        self.route = route
        self.refusal = None  # reason (str) logged by the application before the handshake ended
        self.handshake_done = False
        self.open = False
        self.close_counted = False

    def refused(self, reason):
        if not self.handshake_done:
            self.refusal = reason or "application"

    def accepted(self):
        if self.handshake_done:
            return
        self.handshake_done = True
        if self.refusal is None:
            metrics.WEBSOCKET_HANDSHAKES.labels(self.route, "accepted", "").inc()
            metrics.WEBSOCKET_CONNECTIONS.labels(self.route).inc()
            self.open = True
        else:
            self._count_refusal()

    def _count_refusal(self):
        metrics.WEBSOCKET_HANDSHAKES.labels(self.route, "refused", self.refusal or "application").inc()

    def frame(self, direction, message):
        metrics.FRAMES[direction].inc()
        metrics.BYTES[direction].inc(metrics.message_bytes(message))

    def closed(self, side, code):
        if not self.handshake_done:
            # Closed before accepting: the server answers the handshake with 403.
            self.handshake_done = True
            self._count_refusal()
            return
        if not self.close_counted:
            self.close_counted = True
            metrics.WEBSOCKET_CLOSES.labels(side, metrics.close_code_label(code)).inc()
        self._leave()

    def ended(self):
        if not self.handshake_done:
            # The application returned (or raised) without answering the handshake.
            self.handshake_done = True
            self._count_refusal()
        self._leave()

    def _leave(self):
        if self.open:
            self.open = False
            metrics.WEBSOCKET_CONNECTIONS.labels(self.route).dec()


# The connection whose application runs in this task (set by ConnectionLog).
_current = contextvars.ContextVar("switchyard_connection", default=None)
