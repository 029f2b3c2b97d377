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
EMPTY_BODY = "empty_body"
BODY_TOO_LONG = "body_too_long"
BINARY_FRAME = "binary_frame"
INVALID_AFTER = "invalid_after"


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


def welcome_frame(worker, history):
    """Return the welcome frame: ``worker`` (``"host:pid"``) and ``history`` (message dicts, oldest first)."""
    return {"type": "welcome", "worker": worker, "history": history}


def message_frame(message):
    """Return the frame sent to every socket of a room for one message dict."""
    return {"type": "message", **message}


def validate_body(body):
    """Return ``body`` if it is a non-blank string of at most ``CHAT_MAX_BODY_CHARS`` characters.

    Raises :class:`ProtocolError` with ``invalid_body`` (not a string),
    ``empty_body`` (empty or whitespace only) or ``body_too_long``.
    """
    if not isinstance(body, str):
        raise ProtocolError(INVALID_BODY, "body must be a string")
    if not body.strip():
        raise ProtocolError(EMPTY_BODY, "body must not be empty")
    limit = settings.CHAT_MAX_BODY_CHARS
    if len(body) > limit:
        raise ProtocolError(BODY_TOO_LONG, f"body is {len(body)} characters; the limit is {limit}")
    return body


def parse_client_frame(text):
    """Parse one text frame from a client; return the message body (str) it carries.

    Only ``{"type": "message", "body": "<text>"}`` exists so far. Raises
    :class:`ProtocolError` with ``invalid_json``, ``invalid_frame`` (JSON but
    not an object), ``unknown_type`` or a body error from :func:`validate_body`.
    """
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError(INVALID_JSON, "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ProtocolError(INVALID_FRAME, "frame must be a JSON object")
    kind = frame.get("type")
    if kind != "message":
        raise ProtocolError(UNKNOWN_TYPE, f"unknown frame type {kind!r}; expected 'message'")
    return validate_body(frame.get("body"))


def parse_after(value):
    """Parse an ``after`` message id from a query string; return an int >= 0, or None if absent.

    Raises :class:`ProtocolError` (``invalid_after``) when ``value`` is given but
    is not a non-negative integer.
    """
    if value in (None, ""):
        return None
    try:
        after = int(value)
    except ValueError:
        raise ProtocolError(INVALID_AFTER, "after must be a message id (an integer >= 0)") from None
    if after < 0:
        raise ProtocolError(INVALID_AFTER, "after must be a message id (an integer >= 0)")
    return after
