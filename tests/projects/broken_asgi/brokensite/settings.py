"""Settings of a project whose ASGI_APPLICATION names a module that does not exist."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "django-insecure-broken-asgi-fixture"
DEBUG = True
ALLOWED_HOSTS = []

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "channels",
]

ROOT_URLCONF = "brokensite.urls"
WSGI_APPLICATION = "brokensite.wsgi.application"
# The mistake: there is no brokensite/routing.py (the application is in brokensite/asgi.py).
ASGI_APPLICATION = "brokensite.routing.application"

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
