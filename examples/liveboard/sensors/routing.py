from django.urls import re_path

from . import consumers

websocket_urlpatterns = [
    re_path(r"ws/sensor_data/$", consumers.SensorConsumer.as_asgi()),
]
