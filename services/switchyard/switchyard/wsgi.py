"""WSGI entrypoint for gunicorn: ``gunicorn switchyard.wsgi:application`` serves the project's ``WSGI_APPLICATION``.

gunicorn serves every HTTP request (pages, API, admin, ``/healthz``); nginx
sends it everything except the WebSocket path prefixes and ``/static/``.
Django's own loader picks ``WSGI_APPLICATION`` (or its default handler when
the setting is absent).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "switchyard.settings")

import django  # noqa: E402

django.setup(set_prefix=False)

from switchyard.project import load_application  # noqa: E402

application = load_application("WSGI_APPLICATION")
