"""WSGI entrypoint for gunicorn: ``gunicorn switchyard.wsgi:application``.

gunicorn serves every HTTP request (pages, API, admin, ``/healthz``); nginx sends
it everything except ``/ws/`` and ``/static/``.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "switchyard.settings")

application = get_wsgi_application()
