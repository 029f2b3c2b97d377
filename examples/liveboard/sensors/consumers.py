import json

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer

from .readings import GROUP_NAME, parse_reading, reading_event

MAX_FRAME_LENGTH = 4096


class SensorConsumer(WebsocketConsumer):
    """Devices send readings here; every dashboard on the same socket path gets them."""

    def connect(self):
        async_to_sync(self.channel_layer.group_add)(GROUP_NAME, self.channel_name)
        self.accept()

    def disconnect(self, close_code):
        async_to_sync(self.channel_layer.group_discard)(GROUP_NAME, self.channel_name)

    # Receive a reading from a device
    def receive(self, text_data=None, bytes_data=None):
        raw = text_data if text_data is not None else bytes_data
        if len(raw) > MAX_FRAME_LENGTH:
            self.send_error("frame too large")
            return
        try:
            sensor, value = parse_reading(raw)
        except ValueError as exc:
            self.send_error(str(exc))
            return
        async_to_sync(self.channel_layer.group_send)(
            GROUP_NAME, reading_event(sensor, value, via="websocket")
        )

    # Receive a reading from the group
    def sensor_reading(self, event):
        self.send(
            text_data=json.dumps(
                {
                    "type": "reading",
                    "sensor": event["sensor"],
                    "value": event["value"],
                    "ts": event["ts"],
                    "via": event["via"],
                }
            )
        )

    def send_error(self, error):
        self.send(text_data=json.dumps({"type": "error", "error": error}))
