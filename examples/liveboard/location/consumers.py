import json
import math
import uuid

from channels.generic.websocket import AsyncWebsocketConsumer

GROUP_NAME = "locations"
MAX_NAME_LENGTH = 32
MAX_FRAME_LENGTH = 1024


def parse_position(text_data):
    """Return (name, lat, lon) from a client's frame, or raise ValueError."""
    if text_data is None:
        raise ValueError("send text frames with JSON")
    if len(text_data) > MAX_FRAME_LENGTH:
        raise ValueError("frame too large")
    try:
        data = json.loads(text_data, parse_constant=_reject_constant)
    except ValueError:
        raise ValueError("invalid JSON") from None
    if not isinstance(data, dict) or data.get("type") != "position":
        raise ValueError('expected {"type": "position", "name": ..., "lat": ..., "lon": ...}')

    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ValueError(f"name must be at most {MAX_NAME_LENGTH} printable characters")

    lat = _coordinate(data.get("lat"), "lat", 90)
    lon = _coordinate(data.get("lon"), "lon", 180)
    return name, lat, lon


def _reject_constant(constant):
    raise ValueError(f"{constant} is not a number")


def _coordinate(value, field, limit):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field} must be a number")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"{field} is out of range") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ValueError(f"{field} must be between -{limit} and {limit}")
    return value


class LocationConsumer(AsyncWebsocketConsumer):
    """Everyone on /ws/location/ shares their position with everyone else."""

    async def connect(self):
        self.participant_id = uuid.uuid4().hex
        self.position = None
        await self.channel_layer.group_add(GROUP_NAME, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "id": self.participant_id})
        # Ask the others to send us where they are, so the newcomer's map
        # is not empty until everyone moves.
        await self.channel_layer.group_send(
            GROUP_NAME, {"type": "location.sync", "reply_to": self.channel_name}
        )

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(GROUP_NAME, self.channel_name)
        await self.channel_layer.group_send(
            GROUP_NAME, {"type": "location.left", "id": self.participant_id}
        )

    async def receive(self, text_data=None, bytes_data=None):
        try:
            name, lat, lon = parse_position(text_data)
        except ValueError as exc:
            await self.send_json({"type": "error", "error": str(exc)})
            return
        self.position = {"id": self.participant_id, "name": name, "lat": lat, "lon": lon}
        await self.channel_layer.group_send(
            GROUP_NAME, {"type": "location.position", **self.position}
        )

    # Handlers of the group's messages.

    async def location_position(self, event):
        await self.send_json(
            {
                "type": "position",
                "id": event["id"],
                "name": event["name"],
                "lat": event["lat"],
                "lon": event["lon"],
            }
        )

    async def location_left(self, event):
        await self.send_json({"type": "left", "id": event["id"]})

    async def location_sync(self, event):
        if self.position is not None and event["reply_to"] != self.channel_name:
            await self.channel_layer.send(
                event["reply_to"], {"type": "location.position", **self.position}
            )

    async def send_json(self, content):
        await self.send(text_data=json.dumps(content))
