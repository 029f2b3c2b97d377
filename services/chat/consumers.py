"""The chat consumer: one instance per WebSocket on ``/ws/chat/<room>/``.

Thin by design: parsing lives in ``chat.protocol``, storage and delivery in
``chat.messages``. The frames are written down in ``docs/protocol.md``.
"""

import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chat import messages, protocol
from switchyard.worker import worker_id

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):
    """Joins the room's group, sends the welcome frame, relays messages both ways.

    Handshake: refused (HTTP 403) without a signed-in session; the Origin
    check happens before, in ``AllowedHostsOriginValidator``.

    No loss and no duplicate around the welcome: the consumer joins the group
    *before* it reads the history, so a message stored meanwhile is either in
    the history or arrives as a group event (or both). Group events whose id
    was already in the welcome's history are dropped.
    """

    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            logger.info("refused socket for room %s: not signed in", self.room)
            await self.close()
            return
        self.group = messages.group_name(self.room)
        self.sent_in_welcome = set()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        after_error = None
        try:
            after = protocol.parse_after(query.get("after", [None])[0])
        except protocol.ProtocolError as exc:
            after, after_error = None, exc
        await self.channel_layer.group_add(self.group, self.channel_name)
        history = await database_sync_to_async(messages.join_room)(self.room, after)
        self.sent_in_welcome = {message["id"] for message in history}
        await self.accept()
        if after_error:
            await self.send_frame(protocol.error_frame(after_error.code, after_error.detail))
        await self.send_frame(protocol.welcome_frame(worker_id(), history))

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            await self.send_frame(protocol.error_frame(protocol.BINARY_FRAME, "send JSON in text frames"))
            return
        try:
            body = protocol.parse_client_frame(text_data)
        except protocol.ProtocolError as exc:
            await self.send_frame(protocol.error_frame(exc.code, exc.detail))
            return
        message = await database_sync_to_async(messages.store_message)(self.room, self.user, body)
        await messages.broadcast(message)

    async def chat_message(self, event):
        """Group event handler (``type: chat.message``): forward one message to this socket."""
        message = event["message"]
        if message["id"] in self.sent_in_welcome:
            self.sent_in_welcome.discard(message["id"])
            return
        await self.send_frame(protocol.message_frame(message))

    async def send_frame(self, frame):
        """Send one frame (dict) as a JSON text frame."""
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))
