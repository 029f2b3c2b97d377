from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Rooms, messages, the chat consumer and the messages API."""

    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from chat import signals  # noqa: F401 - connects the sign-out receiver
