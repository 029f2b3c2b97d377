"""``manage.py ensure_superuser``: create the first admin from the environment, once.

Uses Django's own ``createsuperuser --noinput`` (which reads
``DJANGO_SUPERUSER_USERNAME``, ``DJANGO_SUPERUSER_PASSWORD`` and
``DJANGO_SUPERUSER_EMAIL``), but leaves an existing user alone instead of
failing, so every start of a stack can run it.
"""

import os

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the superuser named by DJANGO_SUPERUSER_USERNAME/_PASSWORD unless it exists."

    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if not username or not password:
            self.stdout.write("ensure_superuser: DJANGO_SUPERUSER_USERNAME/_PASSWORD not set; skipped")
            return
        user_model = get_user_model()
        if user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
            self.stdout.write(f"ensure_superuser: {username} exists; left alone")
            return
        call_command(
            "createsuperuser",
            interactive=False,
            username=username,
            email=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""),
            verbosity=0,
        )
        self.stdout.write(f"ensure_superuser: created {username}")
