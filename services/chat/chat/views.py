"""Pages: the room list and the room page (plain HTML and JS, no build step)."""

import re

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from chat.access import can_access
from chat.models import ROOM_SLUG_PATTERN, Room

ROOM_SLUG_RE = re.compile(rf"^{ROOM_SLUG_PATTERN}$")


@login_required
def index(request):
    """List rooms; ``?room=<slug>`` redirects to that room's page (created on first message)."""
    slug = request.GET.get("room", "").strip()
    error = None
    if slug:
        if ROOM_SLUG_RE.match(slug):
            return redirect(reverse("room", kwargs={"room": slug}))
        error = "Room names use letters, digits, '-' and '_' (at most 64)."
    visible = Q(is_private=False) | Q(members=request.user)
    rooms = Room.objects.filter(visible).distinct().order_by("slug").values_list("slug", flat=True)[:200]
    return render(request, "chat/index.html", {"rooms": rooms, "error": error})


@login_required
@ensure_csrf_cookie
def room(request, room):
    """The room page: message list, input and connection state; the socket does the rest.

    403 for a private room the user is not a member of.
    """
    if not can_access(request.user, room):
        raise PermissionDenied("this room is private")
    context = {"room": room, "max_body_chars": settings.CHAT_MAX_BODY_CHARS}
    return render(request, "chat/room.html", context)
