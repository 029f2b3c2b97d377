"""``manage.py private_room <room> <username>...``: make a room private to these members."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chat.access import make_private


class Command(BaseCommand):
    help = "Create or turn a room private, with exactly the given users as members."

    def add_arguments(self, parser):
        parser.add_argument("room")
        parser.add_argument("members", nargs="+")

    def handle(self, *args, room, members, **options):
        try:
            make_private(room, members)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"unknown user: {exc}") from None
        self.stdout.write(f"{room} is private to {', '.join(sorted(members))}")
