"""The settings layer over an unmodified project: what it applies, what a project keeps, what it refuses.

Each case imports ``switchyard.settings`` in a fresh interpreter (settings are
read once per process) in the tutorial fixture project's directory, with
only the environment given.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[4] / "tests" / "projects" / "tutorial"
SHOW = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({name: str(getattr(settings, name, None)) for name in "
    "['SECRET_KEY', 'DEBUG', 'ALLOWED_HOSTS', 'DATABASES', 'CHANNEL_LAYERS', 'STATIC_ROOT', 'MIDDLEWARE', "
    "'INSTALLED_APPS', 'ASGI_APPLICATION', 'ROOT_URLCONF', 'WEBSOCKET_ALLOWED_ORIGINS', 'SECURE_SSL_REDIRECT', "
    "'ASGI_PORT', 'WEBSOCKET_PATH_PREFIXES', 'PROJECT_SETTINGS']}))"
)


def settings_under(env, cwd=TUTORIAL):
    """Return (returncode, settings as str values or stderr) of the layer in ``cwd`` with ``env`` only."""
    base = {key: value for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "SWITCHYARD_", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DEBUG"))}
    result = subprocess.run([sys.executable, "-c", SHOW], cwd=cwd, capture_output=True, text=True,
                            env={**base, "DJANGO_SETTINGS_MODULE": "switchyard.settings", **env})
    return result.returncode, (json.loads(result.stdout) if result.returncode == 0 else result.stderr)


def test_the_deployments_values_replace_the_tutorials():
    code, values = settings_under({"SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "live.example.com",
                                   "DATABASE_URL": "postgres://u:p@db:5432/live", "REDIS_URL": "redis://:pw@r:6379/0",
                                   "STATIC_ROOT": "/srv/static", "HTTPS": "true"})
    assert code == 0, values
    assert values["PROJECT_SETTINGS"] == "mysite.settings"  # found in manage.py
    assert values["SECRET_KEY"] == "k" * 50 and values["DEBUG"] == "False"
    assert values["ALLOWED_HOSTS"] == "['live.example.com']" == values["WEBSOCKET_ALLOWED_ORIGINS"]
    assert "'HOST': 'db'" in values["DATABASES"] and "postgresql" in values["DATABASES"]
    assert "switchyard.fanout.FanoutChannelLayer" in values["CHANNEL_LAYERS"] and "redis://:pw@r:6379/0" in values["CHANNEL_LAYERS"]
    assert values["STATIC_ROOT"] == "/srv/static" and values["SECURE_SSL_REDIRECT"] == "True"
    assert values["MIDDLEWARE"].startswith("['switchyard.health.HealthCheckMiddleware'")
    assert values["INSTALLED_APPS"].endswith("'switchyard.apps.SwitchyardConfig']")
    # The project's own choices stay.
    assert values["ASGI_APPLICATION"] == "mysite.asgi.application" and values["ROOT_URLCONF"] == "mysite.urls"
    # Shared facts from defaults.env.
    assert values["ASGI_PORT"] == "8100" and values["WEBSOCKET_PATH_PREFIXES"] == "['/ws/']"


def test_a_project_keeps_what_it_names_in_switchyard_keep_settings():
    code, values = settings_under({"SECRET_KEY": "k" * 50, "DATABASE_URL": "postgres://u:p@db:5432/live",
                                   "SWITCHYARD_KEEP_SETTINGS": "DATABASES,ALLOWED_HOSTS"})
    assert code == 0, values
    assert "sqlite3" in values["DATABASES"] and "db.sqlite3" in values["DATABASES"]
    assert values["ALLOWED_HOSTS"] == "[]"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY must be set when DEBUG is off"),
        ({"SECRET_KEY": "x", "SWITCHYARD_PROJECT_SETTINGS": "nosuch.settings"},
         "the project's settings module 'nosuch.settings' cannot be imported"),
    ],
)
def test_the_layer_refuses_with_a_readable_message(env, message):
    code, stderr = settings_under(env)
    assert code != 0 and message in stderr


def test_without_a_manage_py_the_settings_module_must_be_named(tmp_path):
    code, stderr = settings_under({"SECRET_KEY": "x"}, cwd=tmp_path)
    assert code != 0 and "it has no manage.py" in stderr


def test_debug_without_a_key_uses_the_projects_development_key():
    code, values = settings_under({"DEBUG": "true"})
    assert code == 0, values
    assert values["SECRET_KEY"].startswith("django-insecure-")


def test_keeping_a_setting_the_project_does_not_define_leaves_djangos_default(tmp_path):
    """A kept setting the project never set (here ALLOWED_HOSTS, SECURE_HSTS_PRELOAD) is Django's default, not an error."""
    (tmp_path / "bare_settings.py").write_text(
        'INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]\nROOT_URLCONF = "bare_settings"\n'
        "urlpatterns = []\n"
    )
    code, values = settings_under({"SECRET_KEY": "k" * 50, "SWITCHYARD_PROJECT_SETTINGS": "bare_settings",
                                   "SWITCHYARD_KEEP_SETTINGS": "ALLOWED_HOSTS,SECURE_HSTS_PRELOAD"}, cwd=tmp_path)
    assert code == 0, values
    assert values["ALLOWED_HOSTS"] == "[]" and values["WEBSOCKET_ALLOWED_ORIGINS"] == "[]"
