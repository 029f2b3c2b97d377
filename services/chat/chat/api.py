"""The messages API on gunicorn: ``/api/rooms/<room>/messages``.

``POST`` (signed in, Django's CSRF check: ``X-CSRFToken`` header with the
``csrftoken`` cookie) stores a message and pushes it to every socket of the
room through the channel layer; ``GET ?after=<offset>`` pages through the history.
Answers are JSON; errors use the protocol's error object (``docs/protocol.md``).
"""

import logging

import redis

from django.http import JsonResponse
from django.views.decorators.http import require_http_methods

from chat import messages, protocol
from chat.access import can_access

logger = logging.getLogger(__name__)


def _error(status, code, detail):
    return JsonResponse(protocol.error_frame(code, detail), status=status)


@require_http_methods(["GET", "POST"])
def messages_view(request, room):
    """GET: ``{"messages": [...]}`` with offsets above ``?after`` (oldest first). POST: store, push, answer 201.

    The POST answer is the message plus ``"delivery"``: ``"live"`` when it was
    pushed to the sockets, ``"delayed"`` when the channel layer was down (the
    message is stored; sockets get it from the history when they reconnect).

    401 ``not_authenticated`` without a session; 403 ``forbidden`` for a private
    room the user is not a member of; 400 for a bad ``after`` or body.
    """
    if not request.user.is_authenticated:
        return _error(401, "not_authenticated", "sign in first")
    if not can_access(request.user, room):
        return _error(403, "forbidden", "this room is private")
    if request.method == "GET":
        try:
            after = protocol.parse_after(request.GET.get("after")) or 0
        except protocol.ProtocolError as exc:
            return _error(400, exc.code, exc.detail)
        return JsonResponse({"messages": messages.messages_page(room, after)})
    try:
        payload = protocol.decode_json(request.body, "request body")
    except protocol.ProtocolError as exc:
        return _error(400, exc.code, exc.detail)
    if not isinstance(payload, dict):
        return _error(400, protocol.INVALID_FRAME, "request body must be a JSON object")
    try:
        message = messages.store_message(room, request.user, payload.get("body"))
    except protocol.ProtocolError as exc:
        return _error(400, exc.code, exc.detail)
    try:
        messages.broadcast_sync(message)
        delivery = "live"
    except (redis.RedisError, OSError) as exc:
        # Stored, so readers get it from the history when they reconnect; only
        # the live push failed. Tell the caller instead of answering 500.
        logger.warning("message %s stored but not pushed: %s", message["id"], exc)
        delivery = "delayed"
    return JsonResponse({**message, "delivery": delivery}, status=201)
