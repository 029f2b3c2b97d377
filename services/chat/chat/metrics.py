"""The chat example's own Prometheus metrics (beside the runtime's, ``switchyard.metrics``).

Same prefix and rules as the runtime's: base units, bounded labels (no room or
user). docs/operations.md lists them.
"""

from prometheus_client import Counter, Histogram

MESSAGES_STORED = Counter(
    "switchyard_chat_messages_stored_total",
    "Chat messages committed to the database (from sockets and from the HTTP API).",
)
MESSAGES_DELIVERED = Counter(
    "switchyard_chat_messages_delivered_total",
    "Chat message frames written to sockets, by how they got there: live (the channel layer) or gap (filled "
    "from the database).",
    ["path"],
)
DELIVERY_LATENCY = Histogram(
    "switchyard_chat_delivery_latency_seconds",
    "Seconds from a message's commit (its broadcast) to its frame being written to a socket, live deliveries "
    "only. Wall clocks of two hosts: skew between them adds to it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGES_REFUSED = Counter(
    "switchyard_chat_messages_refused_total",
    "Chat messages from sockets that were not stored, by reason: rate_limited (an error frame) or flood (the "
    "socket closed with 1008).",
    ["reason"],
)
BROADCASTS_DELAYED = Counter(
    "switchyard_chat_broadcasts_delayed_total",
    "Stored chat messages whose live push failed (the channel layer lost Redis); sockets get them from the "
    "database (their worker's catch-up, or the reconnect's welcome).",
)

# Known label values exist from the start at 0 (switchyard.metrics does the same).
# (and the consumer's per-delivery path uses these children directly).
DELIVERED_LIVE, DELIVERED_GAP = MESSAGES_DELIVERED.labels("live"), MESSAGES_DELIVERED.labels("gap")
REFUSED_RATE_LIMITED, REFUSED_FLOOD = MESSAGES_REFUSED.labels("rate_limited"), MESSAGES_REFUSED.labels("flood")
