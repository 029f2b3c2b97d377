import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from switchyard.management.commands.runasgi import server_argv


@pytest.mark.django_db
def test_ensure_superuser_creates_once_and_leaves_existing_alone(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root-admin")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "first-password")
    call_command("ensure_superuser")
    user = get_user_model().objects.get(username="root-admin")
    assert user.is_superuser and user.check_password("first-password")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "second-password")
    call_command("ensure_superuser")
    user.refresh_from_db()
    assert user.check_password("first-password")


@pytest.mark.django_db
def test_ensure_superuser_without_env_does_nothing(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("ensure_superuser")
    assert not get_user_model().objects.exists()


def test_asgi_servers_get_the_same_limits(settings):
    settings.ASGI_PING_INTERVAL, settings.WEBSOCKET_MAX_MESSAGE_BYTES = 15, 4096
    daphne = server_argv("daphne", "127.0.0.1", 8100)
    uvicorn = server_argv("uvicorn", "127.0.0.1", 8101)
    assert daphne[daphne.index("--ping-interval") + 1] == "15"
    assert daphne[daphne.index("--websocket-max-message-size") + 1] == "4096"
    assert uvicorn[uvicorn.index("--ws-ping-interval") + 1] == "15"
    assert uvicorn[uvicorn.index("--ws-max-size") + 1] == "4096"
    assert daphne[-1] == uvicorn[-1] == "switchyard.asgi:application"
    assert uvicorn[uvicorn.index("--workers") + 1] == "1"  # never WEB_CONCURRENCY's forks
    with pytest.raises(ValueError):
        server_argv("hypercorn", "127.0.0.1", 1)
