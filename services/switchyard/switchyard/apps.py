from django.apps import AppConfig


class SwitchyardConfig(AppConfig):
    """The project package as an app: management commands and the deployment system checks."""

    name = "switchyard"

    def ready(self):
        """Refuse untested versions of the dependencies Switchyard reaches into (``switchyard.upstream``); register the checks."""
        from switchyard import checks, upstream  # noqa: F401 - checks registers the deployment checks

        upstream.check()
