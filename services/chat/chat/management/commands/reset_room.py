"""``manage.py reset_room <room>``: delete a room's history and start a new epoch."""

from django.core.management.base import BaseCommand, CommandError

from chat.messages import reset_history
from chat.models import Room


class Command(BaseCommand):
    help = "Delete a room's messages and give it a new epoch; clients then reload instead of recovering."

    def add_arguments(self, parser):
        parser.add_argument("room")

    def handle(self, *args, room, **options):
        try:
            epoch = reset_history(room)
        except Room.DoesNotExist:
            raise CommandError(f"no room {room!r}") from None
        self.stdout.write(f"reset {room}: new epoch {epoch}")
