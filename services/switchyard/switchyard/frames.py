"""Pre-encoded WebSocket frames, for writing one message to many sockets (the relay's model).

A server-to-client frame is not masked (RFC 6455, section 5.1), so the bytes
of one text frame are the same for every socket that has no extension
negotiated (Switchyard's daphne refuses permessage-deflate): encode it once
per message, write it to each socket with the server's frame writer
(:func:`writer_of`; daphne's ``switchyard.daphne_server.WebSocketProtocol.write_frame``).
The encoding is the ``websockets`` library's (``websockets.frames.Frame``).
"""

from websockets.frames import Frame, Opcode

# The scope extension that carries a socket's frame writer (ASGI scope "extensions").
EXTENSION = "switchyard.frames"


def text_frame(text):
    """Return one final, unmasked WebSocket text frame (bytes) holding ``text`` (str), and its payload length.

    Returns ``(frame, payload_bytes)``. Raises ``UnicodeEncodeError`` for a
    lone surrogate (not valid UTF-8, so not a valid text frame).
    """
    payload = text.encode("utf-8")
    return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[]), len(payload)


def writer_of(scope):
    """Return the socket's frame writer from its ASGI ``scope``, or None when its server offers none.

    The writer is called as ``write(frame, payload_bytes)`` with what
    :func:`text_frame` returns and answers True when the frame was written
    (False: the socket is closed or closing; the frame was dropped).
    """
    return ((scope.get("extensions") or {}).get(EXTENSION) or {}).get("write")
