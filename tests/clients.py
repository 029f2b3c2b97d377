"""Real clients of a running stack, for the stack tests: HTTP through ``requests``,
WebSockets through the ``websockets`` library's synchronous client.

Everything talks to the front door (nginx) only, by its base URL, so the same
clients drive the native, compose and Ansible stacks.
"""

import json
import selectors
import ssl
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests
from websockets.sync.client import connect


class ChatClient:
    """A signed-in user of the stack at ``base_url`` (e.g. ``http://127.0.0.1:8080``).

    :meth:`login` signs in through Django's login form (with its CSRF token),
    like a browser; the session cookie then opens sockets and calls the API.
    """

    def __init__(self, base_url, username, password, verify=True):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.http = requests.Session()
        self.http.verify = verify

    def login(self):
        """Sign in; return self. Raises ``AssertionError`` when the form refuses the credentials."""
        login_url = f"{self.base_url}/accounts/login/"
        self.http.get(login_url, timeout=10).raise_for_status()
        response = self.http.post(
            login_url,
            data={"username": self.username, "password": self.password, "csrfmiddlewaretoken": self.csrf_token},
            headers={"Referer": login_url},
            timeout=10,
        )
        assert "sessionid" in self.http.cookies, f"sign-in as {self.username} failed ({response.status_code})"
        return self

    @property
    def csrf_token(self):
        """The ``csrftoken`` cookie's value (str)."""
        return self.http.cookies["csrftoken"]

    def cookie_header(self):
        """The ``Cookie`` header value carrying this client's session."""
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    def ws_url(self, room, after=None, epoch=None):
        """The WebSocket URL of a room (``ws://`` or ``wss://`` like the base URL), resuming after an offset."""
        return ws_url(self.base_url, room, after, epoch)

    @contextmanager
    def socket(self, room, after=None, epoch=None, origin=None, cookie=True):
        """Open a socket to ``room`` (context manager yielding a :class:`Socket`).

        ``after``/``epoch`` resume from an offset; ``origin`` defaults to the
        base URL (what a browser on the page sends); ``cookie=False`` opens it
        without the session.
        """
        headers = {"Cookie": self.cookie_header()} if cookie else {}
        with connect(
            self.ws_url(room, after, epoch),
            origin=origin or self.base_url,
            additional_headers=headers,
            open_timeout=10,
            ssl=None if urlsplit(self.base_url).scheme == "http" else _ssl_context(self.http.verify),
        ) as connection:
            yield Socket(connection)

    def post_message(self, room, body):
        """POST a message through the API; return the ``requests.Response``."""
        return self.http.post(
            f"{self.base_url}/api/rooms/{room}/messages",
            json={"body": body},
            headers={"X-CSRFToken": self.csrf_token, "Referer": f"{self.base_url}/chat/{room}/"},
            timeout=10,
        )

    def messages_after(self, room, after=0):
        """GET every message of the room after an offset (all pages); return the list of message dicts."""
        found = []
        while True:
            response = self.http.get(f"{self.base_url}/api/rooms/{room}/messages", params={"after": after}, timeout=10)
            response.raise_for_status()
            page = response.json()["messages"]
            if not page:
                return found
            found.extend(page)
            after = page[-1]["offset"]


def ws_url(base_url, room, after=None, epoch=None):
    """The WebSocket URL of ``room`` at ``base_url``, with ``?after=&epoch=`` when resuming."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = "" if after is None else f"?after={after}" + (f"&epoch={epoch}" if epoch else "")
    return f"{scheme}://{parts.netloc}/ws/chat/{room}/{query}"


class SerializedSSLSocket(ssl.SSLSocket):
    """An ``ssl.SSLSocket`` whose reads and writes never run at the same time, for websockets' sync client.

    websockets' sync client reads in a thread of its own and writes from the
    caller's, on one socket; with TLS both enter one OpenSSL ``SSL`` object,
    which must not be used from two threads at once (OpenSSL's threading
    rules; python-engineio#461 and python-socketio#1568 show the same race in
    another sync client). Right after a TLS 1.3 handshake nginx sends session
    tickets: the reader thread processes them, then blocks inside ``SSL_read``
    while the caller writes the HTTP upgrade request. Now and then that request
    was lost and the handshake timed out with no trace in nginx's log
    (``test_prod.py``, the only stack tests over TLS).

    Here both go through one lock, and a read never blocks while it holds
    the lock: it reads without blocking and, when only a non-application
    record or part of a record had arrived (``SSLWantReadError``), waits for
    more bytes outside the lock. Install it with
    ``context.sslsocket_class = SerializedSSLSocket``.
    """

    def _mutex(self):
        return self.__dict__.setdefault("_serialized_lock", threading.RLock())

    def settimeout(self, value):
        """Set the timeout (seconds or None), never while a read has the socket non-blocking."""
        with self._mutex():
            super().settimeout(value)

    def recv(self, buflen=1024, flags=0):
        """Return up to ``buflen`` bytes of application data (``b""`` at EOF), as ``SSLSocket.recv``.

        Honours the socket's timeout (seconds; ``TimeoutError`` past it, the
        want-read error at once when it is 0) and returns ``b""`` once the
        socket is closed by another thread.
        """
        timeout = self.gettimeout()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._mutex():
                if self.fileno() == -1:
                    return b""
                timeout = self.gettimeout()
                super().settimeout(0.0)
                try:
                    return super().recv(buflen, flags)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as wanting:
                    event = selectors.EVENT_WRITE if isinstance(wanting, ssl.SSLWantWriteError) else selectors.EVENT_READ
                    if timeout == 0:
                        raise
                finally:
                    super().settimeout(timeout)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("The read operation timed out")
            # Short slices: a close from another thread does not wake a select on Linux.
            with selectors.DefaultSelector() as selector:
                try:
                    selector.register(self, event)
                except (ValueError, OSError):  # closed meanwhile
                    return b""
                selector.select(0.1 if left is None else min(0.1, left))

    def sendall(self, data, flags=0):
        """Send all of ``data`` (bytes), as ``SSLSocket.sendall``, never during a read."""
        with self._mutex():
            return super().sendall(data, flags)

    def close(self):
        """As ``SSLSocket.close``, never during a read."""
        with self._mutex():
            return super().close()

    def shutdown(self, how):
        """As ``SSLSocket.shutdown``, never during a read (it drops the TLS object)."""
        with self._mutex():
            return super().shutdown(how)


def _ssl_context(verify):
    """An ``ssl.SSLContext`` for websockets' sync client: ``verify`` is a CA file, True (the system's) or False."""
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.sslsocket_class = SerializedSSLSocket
    return context


class JsonSocket:
    """A connected WebSocket speaking JSON text frames, with timeouts in seconds."""

    def __init__(self, connection):
        self.connection = connection

    def send(self, frame):
        """Send ``frame``: a dict (as JSON) or a raw str."""
        self.connection.send(frame if isinstance(frame, str) else json.dumps(frame))

    def recv_until(self, wanted, timeout=10, what="frame"):
        """Return the first frame (dict) for which ``wanted(frame)`` is true, skipping others.

        Raises ``TimeoutError`` listing the skipped frames when none comes
        within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                frame = json.loads(self.connection.recv(timeout=remaining))
            except TimeoutError:
                raise TimeoutError(self._timeout_message(what, timeout, skipped)) from None
            if wanted(frame):
                return frame
            skipped.append(frame)

    def _timeout_message(self, what, timeout, skipped):
        return f"no {what} within {timeout}s; skipped: {skipped[-5:] or 'nothing'}"


class Socket(JsonSocket):
    """A connected chat socket: JSON frames in and out, with timeouts in seconds."""

    def __init__(self, connection):
        super().__init__(connection)
        self.welcome = self.recv(frame_type="welcome")

    @property
    def worker(self):
        """The ``"host:pid"`` of the ASGI worker holding this socket (from the welcome frame)."""
        return self.welcome["worker"]

    def say(self, body):
        """Send a chat message with ``body``."""
        self.send({"type": "message", "body": body})

    def recv(self, timeout=10, frame_type=None):
        """Return the next frame (dict), skipping frames of other types when ``frame_type`` is given.

        Raises ``TimeoutError`` when none arrives within ``timeout`` seconds;
        its message lists the frames skipped meanwhile (an error frame there
        usually explains the wait).
        """
        return self.recv_until(lambda frame: frame_type is None or frame["type"] == frame_type, timeout,
                               frame_type or "frame")

    def recv_message(self, body, timeout=10):
        """Return the message frame with ``body``, skipping others; ``TimeoutError`` (listing them) if it never comes."""
        return self.recv_until(lambda frame: frame["type"] == "message" and frame["body"] == body, timeout,
                               f"message {body!r}")

    def _timeout_message(self, what, timeout, skipped):
        kinds = [f["type"] if f["type"] != "error" else f"error {f.get('code')}" for f in skipped]
        worker = self.welcome["worker"] if hasattr(self, "welcome") else "?"
        return f"no {what} within {timeout}s (worker {worker}); skipped: {kinds or 'nothing'}"


class RawSocket:
    """A WebSocket that can send what a well-behaved client never would, for hostile-input tests.

    Built on the ``websockets`` library's sans-I/O ``ClientProtocol`` over a
    plain TCP socket (plain ``ws://`` only): the handshake and framing are the
    library's; :meth:`send_frame` puts any frame on the wire, valid or not.
    """

    def __init__(self, base_url, room, cookie, origin=None, timeout=10):
        import socket as socket_module

        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        uri = parse_uri(ws_url(base_url, room))
        self.timeout = timeout
        self.sock = socket_module.create_connection((uri.host, uri.port), timeout=timeout)
        self.protocol = ClientProtocol(uri, max_size=None)
        request = self.protocol.connect()
        request.headers["Origin"] = origin or base_url
        request.headers["Cookie"] = cookie
        self.protocol.send_request(request)
        self._flush()
        while self.protocol.handshake_exc is None and self.protocol.state.name == "CONNECTING":
            self._read()
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc
        self.pending = []
        self.welcome = self.recv_json(frame_type="welcome")

    def _flush(self):
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _read(self):
        data = self.sock.recv(65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self._flush()
        return bool(data)

    def send_frame(self, opcode, payload, fin=True, rsv1=False):
        """Send one frame: ``opcode`` a ``websockets.frames.Opcode``, ``payload`` bytes (unchecked)."""
        from websockets.frames import Frame

        self.protocol.send_frame(Frame(opcode, payload, fin=fin, rsv1=rsv1))
        self._flush()

    def recv_json(self, frame_type=None):
        """Return the next text frame (dict), of ``frame_type`` when given."""
        import json as json_module

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for event in self.protocol.events_received():
                if getattr(event, "opcode", None) is not None and event.opcode.name == "TEXT":
                    self.pending.append(json_module.loads(event.data))
            while self.pending:
                frame = self.pending.pop(0)
                if frame_type is None or frame["type"] == frame_type:
                    return frame
            if not self._read():
                break
        raise TimeoutError(f"no {frame_type or 'frame'}")

    def close_code(self):
        """Read until the server closes; return the close code it sent (1006 if none)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self.protocol.close_rcvd is None:
            try:
                if not self._read():
                    break
            except OSError:
                break
        self.sock.close()
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd else 1006


class HttpProbe(threading.Thread):
    """GET ``urls`` in turn, every ``interval`` seconds (fresh connections), until :meth:`stop`.

    ``verify`` is passed to ``requests`` (True, False or a CA file path).
    ``statuses`` collects ``(url, status)``: the HTTP status (int), or the
    name of the ``requests`` exception (str) when no answer came.
    """

    def __init__(self, urls, verify=True, interval=0.2):
        super().__init__(daemon=True)
        self.urls, self.verify, self.interval = urls, verify, interval
        self.statuses = []
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            for url in self.urls:
                try:
                    status = requests.get(url, timeout=10, verify=self.verify).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                self.statuses.append((url, status))
            self.stopped.wait(self.interval)

    def stop(self, timeout=15):
        """Stop probing and wait up to ``timeout`` seconds for the last request."""
        self.stopped.set()
        self.join(timeout)

    def count(self, predicate):
        """How many statuses (ints only) satisfy ``predicate``."""
        return sum(1 for _, status in self.statuses if isinstance(status, int) and predicate(status))


@contextmanager
def json_socket(base_url, path, origin=None, verify=None):
    """Open a WebSocket to ``path`` (e.g. ``"/ws/echo/"``) at ``base_url``; yield a :class:`JsonSocket`.

    For projects other than the chat example (no welcome frame). ``origin``
    defaults to the base URL (what a browser on the site sends); ``verify`` is
    the CA file for ``https`` base URLs (default: ``REQUESTS_CA_BUNDLE``, as
    ``requests`` does). Raises ``websockets.exceptions.InvalidStatus`` when
    the handshake is refused.
    """
    import os

    parts = urlsplit(base_url)
    secure = parts.scheme == "https"
    with connect(
        f"{'wss' if secure else 'ws'}://{parts.netloc}{path}",
        origin=origin or base_url.rstrip("/"),
        open_timeout=10,
        ssl=_ssl_context(verify or os.environ.get("REQUESTS_CA_BUNDLE") or True) if secure else None,
    ) as connection:
        yield JsonSocket(connection)

