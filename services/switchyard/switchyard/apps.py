from django.apps import AppConfig


class SwitchyardConfig(AppConfig):
    """The project package as an app: management commands and the deployment system checks."""

    name = "switchyard"

    def ready(self):
        from switchyard import checks  # noqa: F401 - registers the checks
