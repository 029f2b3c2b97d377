"""The chat WebSocket protocol: parsing client frames and building server frames.

Written down for clients in ``docs/protocol.md``; keep the two in step. Plain
functions with no I/O, shared by the consumer (WebSocket) and the API (HTTP).
"""

import json

from django.conf import settings

# Error codes of ``{"type": "error", "code": ..., "detail": ...}`` frames.
INVALID_JSON = "invalid_json"
INVALID_FRAME = "invalid_frame"
UNKNOWN_TYPE = "unknown_type"
INVALID_BODY = "invalid_body"
INVALID_TEXT = "invalid_text"
EMPTY_BODY = "empty_body"
BODY_TOO_LONG = "body_too_long"
BINARY_FRAME = "binary_frame"
INVALID_AFTER = "invalid_after"
RATE_LIMITED = "rate_limited"

# Close codes the server sends (documented in docs/protocol.md).
# Registered codes (RFC 6455 / IANA) where one fits, 4000-4999 for the rest.
CLOSE_SERVICE_RESTART = 1012  # the worker is draining (SIGTERM): reconnect now
CLOSE_TRY_AGAIN_LATER = 1013  # this worker lost Redis (the channel layer): reconnect with backoff
CLOSE_POLICY_VIOLATION = 1008  # kept flooding past the rate limit, or over the socket cap: do not retry at once
CLOSE_HISTORY_RESET = 4000  # the room's history was reset (new epoch): reconnect and reload
CLOSE_SIGNED_OUT = 4401  # the session signed out: sign in again before reconnecting
CLOSE_FORBIDDEN = 4403  # not a member of this private room: do not reconnect

# Client frame types.
MESSAGE = "message"
PRESENCE = "presence"


class ProtocolError(Exception):
    """A client frame or request body that breaks the protocol.

    ``code`` is one of the error codes above (str), ``detail`` a sentence for
    people (str). The socket stays open; the client gets :func:`error_frame`.
    """

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def error_frame(code, detail):
    """Return the error frame dict ``{"type": "error", "code", "detail"}``."""
    return {"type": "error", "code": code, "detail": detail}


def welcome_frame(worker, room, welcome):
    """Return the welcome frame for ``worker`` (``"host:pid"``) and ``room`` (slug).

    ``welcome`` is ``chat.messages.welcome``'s dict: ``epoch``, ``offset``,
    ``recovered`` and ``history`` (message dicts, oldest first).
    """
    return {"type": "welcome", "worker": worker, "room": room, **welcome}


def presence_frame(room, users):
    """Return the presence frame: ``users`` is the sorted list of usernames in ``room``."""
    return {"type": "presence", "room": room, "users": users}


def message_frame(message):
    """Return the frame sent to every socket of a room for one message dict."""
    return {"type": "message", **message}


def encode(frame):
    """Return a server frame (dict) as the text of one WebSocket text frame (JSON, UTF-8 as is)."""
    return json.dumps(frame, ensure_ascii=False)


def validate_body(body):
    """Return ``body`` if it is a non-blank string of at most ``CHAT_MAX_BODY_CHARS`` characters of storable text.

    Raises :class:`ProtocolError` with ``invalid_body`` (not a string),
    ``invalid_text`` (a character no database or UTF-8 frame can carry: a lone
    surrogate such as JSON's ``"\\ud800"``, or NUL, which PostgreSQL's text
    refuses), ``empty_body`` (empty or whitespace only) or ``body_too_long``.
    """
    if not isinstance(body, str):
        raise ProtocolError(INVALID_BODY, "body must be a string")
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(INVALID_TEXT, "body holds a lone surrogate: not Unicode text") from None
    if "\x00" in body:
        raise ProtocolError(INVALID_TEXT, "body holds a NUL character")
    if not body.strip():
        raise ProtocolError(EMPTY_BODY, "body must not be empty")
    limit = settings.CHAT_MAX_BODY_CHARS
    if len(body) > limit:
        raise ProtocolError(BODY_TOO_LONG, f"body is {len(body)} characters; the limit is {limit}")
    return body


def decode_json(text, what="frame"):
    """Return the JSON value of ``text`` (str or bytes); the one JSON parse of client input (sockets and the API).

    Raises :class:`ProtocolError` ``invalid_json`` when it is not JSON, or
    when it nests deeper than Python's recursion limit allows (about 1,000
    levels: the parser's RecursionError, which would otherwise end the
    consumer with 1011). Its size is bounded before this by
    ``WEBSOCKET_MAX_MESSAGE_BYTES`` (1009) or the request size limits.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ProtocolError(INVALID_JSON, f"{what} is nested too deeply") from None
    except ValueError:
        raise ProtocolError(INVALID_JSON, f"{what} is not valid JSON") from None


def parse_client_frame(text):
    """Parse one text frame from a client; return ``(type, body)``.

    ``{"type": "message", "body": "<text>"}`` gives ``("message", body)``;
    ``{"type": "presence"}`` gives ``("presence", None)``. Raises
    :class:`ProtocolError` with ``invalid_json``, ``invalid_frame`` (JSON but
    not an object), ``unknown_type`` or a body error from :func:`validate_body`.
    """
    frame = decode_json(text)
    if not isinstance(frame, dict):
        raise ProtocolError(INVALID_FRAME, "frame must be a JSON object")
    kind = frame.get("type")
    if kind == PRESENCE:
        return PRESENCE, None
    if kind != MESSAGE:
        shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:37] + "..."
        raise ProtocolError(UNKNOWN_TYPE, f"unknown frame type {shown}; expected 'message' or 'presence'")
    return MESSAGE, validate_body(frame.get("body"))


def parse_after(value):
    """Parse an ``after`` offset from a query string; return an int >= 0, or None if absent.

    Raises :class:`ProtocolError` (``invalid_after``) when ``value`` is given but
    is not a non-negative integer.
    """
    if value in (None, ""):
        return None
    # ASCII digits only: int() would also take "٣", "1_000" and " 5 ".
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ProtocolError(INVALID_AFTER, "after must be an offset (an integer >= 0)")
    return int(value)
