"""The deployment checks: each passes on production settings and fails on settings that break it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.test import override_settings

# The bundled example project the unit tests run with (any project would do).
CHAT_PROJECT = Path(__file__).resolve().parents[3] / "chat"
PRODUCTION_ENV = {
    "DEBUG": "false",
    "HTTPS": "true",
    "SECRET_KEY": "check-deploy-" + "x" * 50,
    "ALLOWED_HOSTS": "chat.example.com",
    "REDIS_URL": "redis://:a-password@redis:6379/0",
    "DATABASE_URL": "sqlite:////tmp/switchyard-check.sqlite3",
    "SWITCHYARD_PROJECT_SETTINGS": "chatsite.settings",
}


def switchyard_errors(**overrides):
    with override_settings(**overrides):
        return sorted({m.id for m in run_checks(include_deployment_checks=True) if m.id.startswith("switchyard.")})


def test_production_like_settings_pass_every_custom_check(settings):
    assert switchyard_errors(
        DEBUG=False, ALLOWED_HOSTS=["chat.example.com"], WEBSOCKET_ALLOWED_ORIGINS=["chat.example.com"],
        REDIS_URL="redis://:pw@redis:6379/0",
        CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                    "CONFIG": {"hosts": [{"address": "redis://:pw@redis:6379/0"}]}}},
    ) == []


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"ALLOWED_HOSTS": ["*"]}, "switchyard.E002"),
        ({"WEBSOCKET_ALLOWED_ORIGINS": ["*"]}, "switchyard.E002"),
        ({"CHANNEL_LAYERS": {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}}, "switchyard.E003"),
        ({"WEBSOCKET_MAX_MESSAGE_BYTES": 0}, "switchyard.E004"),
        ({"WEBSOCKET_MAX_MESSAGE_BYTES": 64 * 1024 * 1024}, "switchyard.E004"),
        ({"REDIS_URL": "redis://redis:6379/0"}, "switchyard.E005"),
        ({"ASGI_APPLICATION": "switchyard.tests.no_such_module.application"}, "switchyard.E001"),
        ({"ASGI_APPLICATION": None}, "switchyard.E001"),
    ],
)
def test_each_check_fails_on_settings_that_break_it(overrides, error):
    base = {
        "DEBUG": False, "ALLOWED_HOSTS": ["chat.example.com"], "WEBSOCKET_ALLOWED_ORIGINS": ["chat.example.com"],
        "REDIS_URL": "redis://:pw@redis:6379/0",
        "CHANNEL_LAYERS": {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                       "CONFIG": {"hosts": [{"address": "redis://:pw@redis:6379/0"}]}}},
    }
    assert error in switchyard_errors(**{**base, **overrides})


def manage_check(settings_module, extra_env=None):
    env = {**{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}, **PRODUCTION_ENV,
           **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "django", "check", "--deploy", "--fail-level", "WARNING", "--settings", settings_module],
        cwd=CHAT_PROJECT, env=env, capture_output=True, text=True,
    )


def test_check_deploy_passes_with_the_production_settings():
    result = manage_check("switchyard.settings")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_fails_on_a_settings_module_that_breaks_a_check():
    result = manage_check("switchyard.settings", {"REDIS_URL": "redis://redis:6379/0", "ALLOWED_HOSTS": "*"})
    assert result.returncode != 0
    assert "switchyard.E005" in result.stderr and "switchyard.E002" in result.stderr
