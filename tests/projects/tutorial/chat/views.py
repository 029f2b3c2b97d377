import json

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


def index(request):
    return render(request, "chat/index.html")


def room(request, room_name):
    return render(request, "chat/room.html", {"room_name": room_name})


# Push a message into a room from outside the WebSocket, e.g.
#   curl -X POST -d message=hello http://127.0.0.1:8000/chat/lobby/push/
@csrf_exempt
@require_POST
def push(request, room_name):
    if request.content_type == "application/json":
        try:
            message = json.loads(request.body).get("message")
        except (ValueError, AttributeError):
            return JsonResponse({"error": "invalid JSON"}, status=400)
    else:
        message = request.POST.get("message")
    if message is None:
        return JsonResponse({"error": "message is required"}, status=400)

    channel_layer = get_channel_layer()
    async_to_sync(channel_layer.group_send)(
        f"chat_{room_name}", {"type": "chat.message", "message": message}
    )
    return JsonResponse({"pushed": True})
