"""daphne as Switchyard runs it: a graceful drain, and the standard close codes.

**Drain.** On SIGTERM: stop accepting, close every socket with 1012, exit.

daphne stops its Twisted reactor on SIGTERM and drops open sockets without a
close frame. :class:`DrainingServer` replaces that: it stops listening (nginx
then sends new sockets to other workers), sends every open WebSocket a close
frame with code 1012 (Service Restart, RFC 6455 registry) so clients
reconnect at once and recover from their offset, waits up to
``drain_timeout`` seconds for the sockets to finish closing, then stops.

uvicorn needs no wrapper: on SIGTERM it stops listening, closes every
WebSocket with 1012 and waits ``--timeout-graceful-shutdown`` seconds.

**Close codes.** daphne's autobahn protocol drops the TCP connection on a
protocol violation (``failByDrop``) and lets the application close only with
1000 or 3000-4999. :class:`WebSocketProtocol` and the factory options below
make daphne behave like uvicorn and RFC 6455: an oversize message is closed
with 1009, invalid UTF-8 with 1007, a protocol error with 1002, and the
application may close with the registered codes 1008 (policy), 1011, 1012
and 1013 (try again later).

**Slow readers.** daphne's ``send()`` never waits: what a client does not
read piles up in the worker's memory (Twisted's write buffer). The protocol
registers itself as the transport's push producer (Twisted's flow control):
Twisted calls ``pauseProducing`` when the socket's buffer passes its mark and
``resumeProducing`` when it drains. A send while paused adds to the bytes
waiting; past ``WEBSOCKET_SLOW_READER_BYTES`` (1 MiB) or once the pause has
lasted ``WEBSOCKET_SLOW_READER_SECONDS`` (10 s) the socket is closed with
4408 (a close frame, then the connection is aborted after 2 s if the client
still reads nothing), and later sends are dropped.

**Outgoing size.** autobahn applies the incoming message size limit to
outgoing messages too; :meth:`WebSocketProtocol.sendMessage` lifts it for
what the server sends, as uvicorn does.

**Pre-encoded frames.** Every socket of daphne offers the application
:meth:`WebSocketProtocol.write_frame` in its scope
(``scope["extensions"]["switchyard.frames"]["write"]``): one WebSocket frame,
already encoded (``switchyard.frames.text_frame``), written to the socket's
transport as it is. A group message encoded once per worker then costs each
local socket one buffer write instead of the ASGI send path (the consumer's
middleware, daphne's reply, autobahn's framing): the relay's model. The
slow-reader bound and the frame metrics apply to it as to every send.

**Send after the client left.** autobahn raises its own ``Disconnected`` when
the application sends on a closed socket; the ASGI spec (2.4) asks for a
server-specific ``OSError`` subclass, which uvicorn raises and the consumer
handles. :class:`ClientDisconnected` is daphne's, so a send that races a
disconnect ends the consumer quietly instead of logging "Exception inside
application".
"""

import logging
import signal
import time

from django.conf import settings
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from daphne.cli import CommandLineInterface
from autobahn.exception import Disconnected
from daphne import ws_protocol
from daphne.server import Server
from twisted.internet import reactor, tcp

from switchyard import metrics

logger = logging.getLogger(__name__)

# Registered close codes (RFC 6455 section 7.4.1 and the IANA registry) that an
# application may send; 1004-1006 and 1015 are reserved.
APPLICATION_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


class ClientDisconnected(OSError):
    """Raised to the application by ``send()`` on a socket the client already closed (ASGI spec 2.4)."""


@implementer(IPushProducer)
class SendFlow:
    """Twisted's view of one socket's write buffer: paused (since when, bytes queued since) or flowing."""

    def __init__(self):
        self.paused_at = None  # time.monotonic() when the buffer passed its mark, or None
        self.waiting = 0  # bytes of messages sent since

    def pauseProducing(self):
        if self.paused_at is None:
            self.paused_at, self.waiting = time.monotonic(), 0

    def resumeProducing(self):
        self.paused_at, self.waiting = None, 0

    def stopProducing(self):
        self.paused_at = None


class WebSocketProtocol(ws_protocol.WebSocketProtocol):
    """daphne's protocol: registered close codes, slow readers bounded, and sends after a disconnect raise :class:`ClientDisconnected`."""

    slow = False
    send_flow = None
    # Seconds a client closed for reading too slowly gets before the connection is aborted, in case
    # autobahn's own close handshake timeout (1 s) has not dropped it already.
    slow_abort_after = 2.0

    def onOpen(self):
        super().onOpen()
        self.send_flow = SendFlow()
        # daphne's HTTP channel stays registered from before the upgrade; the socket is ours now.
        self.transport.unregisterProducer()
        self.registerProducer(self.send_flow, True)

    def handle_reply(self, message):
        if message.get("type") == "websocket.send" and self.send_flow is not None:
            if self.slow:
                return  # closed for reading too slowly: nothing more is buffered for it
            flow = self.send_flow
            if flow.paused_at is not None and settings.WEBSOCKET_SLOW_READER_SECONDS:
                payload = message.get("bytes") or (message.get("text") or "").encode("utf-8", "surrogatepass")
                flow.waiting += len(payload)
                if (flow.waiting > settings.WEBSOCKET_SLOW_READER_BYTES
                        or time.monotonic() - flow.paused_at > settings.WEBSOCKET_SLOW_READER_SECONDS):
                    self.close_slow_reader()
                    return
        try:
            super().handle_reply(message)
        except Disconnected as exc:
            raise ClientDisconnected(str(exc)) from exc

    def write_frame(self, frame, payload_bytes):
        """Write one pre-encoded server frame (``frame``, bytes: header and payload) to the socket.

        ``payload_bytes`` (int) is the payload's length, for the frame
        metrics. Returns False, writing nothing, when the socket is not open
        or was closed for reading too slowly (the frame is then dropped, as a
        send after a disconnect is); a write that takes a slow reader past its
        bound closes it with 4408 instead (see the module docstring). Frames
        written here and through ``send()`` reach the client in call order:
        both end in the same Twisted write buffer.
        """
        if self.state != self.STATE_OPEN or self.slow or self.transport is None:
            return False
        flow = self.send_flow
        if flow is not None and flow.paused_at is not None and slow_reader_limits()[1]:
            flow.waiting += payload_bytes
            limit_bytes, limit_seconds = slow_reader_limits()
            if flow.waiting > limit_bytes or time.monotonic() - flow.paused_at > limit_seconds:
                self.close_slow_reader()
                return False
        write_now(self.transport, frame)
        metrics.FRAMES["out"].inc()
        metrics.BYTES["out"].inc(payload_bytes)
        return True

    def sendMessage(self, payload, isBinary=False, *args, **kwargs):
        """autobahn's ``sendMessage`` without its limit on *outgoing* messages.

        daphne sets one ``maxMessagePayloadSize`` (``--websocket-max-message-size``,
        our ``WEBSOCKET_MAX_MESSAGE_BYTES``) and autobahn applies it to what the
        server sends too: a chat welcome holding the history of a room full of
        the largest legal bodies (~400 KB) raised ``PayloadExceededError``, and
        the socket closed with 1011. The limit is for what clients send (as
        uvicorn's ``--ws-max-size``); it still applies to every incoming message.
        """
        limit, self.maxMessagePayloadSize = self.maxMessagePayloadSize, 0
        try:
            return super().sendMessage(payload, isBinary, *args, **kwargs)
        finally:
            self.maxMessagePayloadSize = limit

    def close_slow_reader(self):
        """Close with 4408 a socket whose client stopped reading; abort the connection if it reads nothing more."""
        from switchyard.websocket import CLOSE_SLOW_READER, connections

        self.slow = True
        metrics.SLOW_READER_CLOSES.inc()
        path = getattr(self, "path", b"")  # daphne's raw request path (bytes)
        connections.info("close", extra={
            "event": "close", "path": path.decode("latin-1") if isinstance(path, bytes) else str(path),
            "client": self.client_addr[0] if self.client_addr else "", "code": CLOSE_SLOW_READER,
            "reason": "slow_reader", "waiting_bytes": self.send_flow.waiting,
            "paused_seconds": round(time.monotonic() - self.send_flow.paused_at, 1)})
        self.sendCloseFrame(code=CLOSE_SLOW_READER, isReply=False)
        reactor.callLater(self.slow_abort_after, self._abort_if_open)

    def _abort_if_open(self):
        if self.state != self.STATE_CLOSED and self.transport is not None:
            self.transport.abortConnection()

    def serverClose(self, code=None):
        code = 1000 if code is None else code
        if code in APPLICATION_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            super().serverClose(code)


def write_now(transport, data):
    """Write ``data`` (bytes) to a Twisted TCP ``transport``: straight to the socket when nothing is buffered.

    Twisted's ``write()`` only buffers and registers the socket for writing;
    the reactor sends on its next turn and unregisters it: two ``epoll_ctl``
    calls and a callback per frame around the one ``send``, 13% of a worker's
    time in a fan-out profile (docs/benchmarks.md). When Twisted holds nothing
    for this socket, one non-blocking ``send`` here does the same (asyncio's
    transports work this way); whatever the kernel does not take, and any
    write while Twisted's buffer is not empty, goes through ``write()``, so
    the order of bytes and Twisted's flow control (``pauseProducing``) are
    kept. Relies on ``twisted.internet.tcp.Connection``'s ``socket``,
    ``dataBuffer``, ``_tempDataLen``, ``connected``, ``disconnecting`` and
    ``_writeDisconnected`` (``switchyard.upstream``); any other transport
    (TLS, a test's) just gets ``write()``.
    """
    if (type(transport) is not tcp.Server or transport.dataBuffer or transport._tempDataLen
            or not transport.connected or transport.disconnecting or transport._writeDisconnected):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        sent = 0  # a broken connection: Twisted's write path meets the same error and loses the connection
    if sent < len(data):
        transport.write(data[sent:] if sent else data)


_slow_reader_limits = None


def slow_reader_limits():
    """Return ``(WEBSOCKET_SLOW_READER_BYTES, WEBSOCKET_SLOW_READER_SECONDS)``, read from settings once."""
    global _slow_reader_limits
    if _slow_reader_limits is None:
        _slow_reader_limits = (settings.WEBSOCKET_SLOW_READER_BYTES, settings.WEBSOCKET_SLOW_READER_SECONDS)
    return _slow_reader_limits


class DrainingServer(Server):
    """daphne's ``Server`` with a drain on SIGTERM/SIGINT (seconds: :attr:`drain_timeout`)."""

    drain_timeout = 10.0
    poll_interval = 0.1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ports = []
        self.draining = False
        self.drain_deadline = None

    def run(self):
        # Our handlers instead of Twisted's (which stop the reactor at once).
        self.signal_handlers = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: reactor.callFromThread(self.drain))
        super().run()

    def listen_success(self, port):
        # The factory exists by now and builds a protocol per connection, so
        # these options apply to every socket accepted from here on.
        self.ws_factory.protocol = WebSocketProtocol
        self.ws_factory.setProtocolOptions(failByDrop=False, perMessageCompressionAccept=lambda offers: None)
        self.ports.append(port)
        super().listen_success(port)

    def create_application(self, protocol, scope):
        """daphne's, with :meth:`WebSocketProtocol.write_frame` offered in a WebSocket's scope extensions."""
        if scope.get("type") == "websocket" and isinstance(protocol, WebSocketProtocol):
            extensions = dict(scope.get("extensions") or {})
            extensions["switchyard.frames"] = {"write": protocol.write_frame}
            scope["extensions"] = extensions
        return super().create_application(protocol, scope)

    def open_websockets(self):
        """Return the WebSocket protocols that are not closed yet (list)."""
        return [
            protocol
            for protocol, details in self.connections.items()
            if isinstance(protocol, ws_protocol.WebSocketProtocol) and "disconnected" not in details
        ]

    def drain(self):
        """Stop accepting, close every socket with 1012, and stop once they are gone (reactor thread)."""
        if self.draining:
            return
        self.draining = True
        metrics.mark_draining()
        self.drain_deadline = time.monotonic() + self.drain_timeout
        for port in self.ports:
            port.stopListening()
        sockets = self.open_websockets()
        logger.info("draining: closing %d sockets with 1012 (timeout %ss)", len(sockets), self.drain_timeout)
        for protocol in sockets:
            if protocol.state == protocol.STATE_OPEN:
                # sendCloseFrame, not sendClose: autobahn lets applications send
                # only 1000 and 3000-4999; 1012 is the server's own to send.
                protocol.sendCloseFrame(code=1012, isReply=False)
        self._check_drained()

    def _check_drained(self):
        remaining = self.open_websockets()
        if not remaining or time.monotonic() >= self.drain_deadline:
            if remaining:
                logger.warning("drain timeout: %d sockets still open; stopping anyway", len(remaining))
            self.stop()
            return
        reactor.callLater(self.poll_interval, self._check_drained)


class DrainingCommandLine(CommandLineInterface):
    """daphne's command line, serving with :class:`DrainingServer`."""

    server_class = DrainingServer


def run_daphne(argv, drain_timeout):
    """Run daphne with ``argv`` (its command-line arguments, list of str) and a drain of ``drain_timeout`` seconds."""
    DrainingServer.drain_timeout = drain_timeout
    DrainingCommandLine().run(argv)
