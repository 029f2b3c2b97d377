import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="alice-pass-1")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", password="bob-pass-1")


@pytest.fixture(autouse=True)
def empty_channel_layer():
    """Each test starts with an empty in-memory channel layer (it is process-wide)."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    async_to_sync(get_channel_layer().flush)()
