"""What a sensor reading is, shared by the WebSocket consumer and the HTTP view."""

import json
import math
import re
from datetime import datetime, timezone

GROUP_NAME = "sensors"
SENSOR_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _reject_constant(constant):
    raise ValueError(f"{constant} is not a number")


def parse_reading(raw):
    """Return (sensor, value) from a JSON document (str or bytes), or raise ValueError."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError('expected {"sensor": NAME, "value": NUMBER}')

    sensor = data.get("sensor")
    if not isinstance(sensor, str) or not SENSOR_NAME.fullmatch(sensor):
        raise ValueError("sensor must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")

    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("value must be a number")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError("value is too large") from None
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    return sensor, value


def reading_event(sensor, value, via):
    """The channel layer message that carries one reading to the dashboards."""
    return {
        "type": "sensor.reading",
        "sensor": sensor,
        "value": value,
        "ts": datetime.now(timezone.utc).isoformat(),
        "via": via,
    }
