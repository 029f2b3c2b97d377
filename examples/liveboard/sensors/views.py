from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from .readings import GROUP_NAME, parse_reading, reading_event


def dashboard(request):
    return render(request, "sensors/dashboard.html")


# Devices have no CSRF token: they POST plain JSON, like
#   curl -X POST -H 'Content-Type: application/json' \
#        -d '{"sensor": "greenhouse.temp", "value": 21.5}' http://127.0.0.1:8000/api/readings/
@csrf_exempt
def post_reading(request):
    if request.method != "POST":
        response = JsonResponse({"error": "method not allowed, POST a reading"}, status=405)
        response["Allow"] = "POST"
        return response
    try:
        sensor, value = parse_reading(request.body)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)

    event = reading_event(sensor, value, via="http")
    async_to_sync(get_channel_layer().group_send)(GROUP_NAME, event)
    return JsonResponse(
        {"accepted": True, "sensor": sensor, "value": value, "ts": event["ts"]}, status=202
    )
