"""The deployed project: load its applications, and check that it can start (``python -m switchyard.preflight``).

Switchyard serves whatever project ``SWITCHYARD_PROJECT_SETTINGS`` names; its
WSGI and ASGI applications are the ones its settings name in
``WSGI_APPLICATION`` and ``ASGI_APPLICATION``. When one of them cannot be
loaded, :class:`ProjectError` says which and why in one line, naming the
project file where the error was raised.
"""

import re
import sys
import traceback
from pathlib import Path

# manage.py's own line: os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
_SETTINGS_LINE = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")


class ProjectError(RuntimeError):
    """The project cannot start; ``str()`` is one readable line naming the cause."""


def settings_module(directory):
    """Return the settings module (str) that the project's ``manage.py`` in ``directory`` sets.

    ``directory`` is a str or Path. Raises :class:`ProjectError` when it has
    no ``manage.py`` or the file sets no ``DJANGO_SETTINGS_MODULE`` default.
    """
    manage = Path(directory) / "manage.py"
    if not manage.is_file():
        raise ProjectError(f"{Path(directory).resolve()} is not a Django project: it has no manage.py")
    found = _SETTINGS_LINE.search(manage.read_text(errors="replace"))
    if not found:
        raise ProjectError(f"{manage} does not set DJANGO_SETTINGS_MODULE: name the settings module "
                           "(SWITCHYARD_PROJECT_SETTINGS, or --settings for scripts/stack)")
    return found.group(1)


def _where(exc, project_dir):
    """Return ``" (FILE, line N)"`` for the innermost traceback frame inside ``project_dir`` (a Path), or ``""``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append(traceback.FrameSummary(exc.filename, exc.lineno or 0, ""))
    for frame in reversed(frames):
        if frame.filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
            continue
        path = Path(frame.filename).resolve()
        if project_dir and path.is_relative_to(project_dir):
            return f" ({path.relative_to(project_dir)}, line {frame.lineno})"
    return ""


def describe(exc, project_dir=None):
    """Return one line describing ``exc`` (an exception) and where in ``project_dir`` it was raised."""
    project_dir = Path(project_dir or Path.cwd()).resolve()
    cause = exc
    # ImproperlyConfigured raised "from" an import error: show the root cause too.
    while cause.__cause__ is not None and not str(cause):
        cause = cause.__cause__
    return f"{type(cause).__name__}: {cause}{_where(cause, project_dir)}"


def load_application(setting):
    """Import the application that ``settings.<setting>`` names (``"WSGI_APPLICATION"`` or ``"ASGI_APPLICATION"``).

    Django must be set up. Returns the application object. Raises
    :class:`ProjectError` when the setting is missing or empty, or the import fails.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, setting, None)
    if not path:
        hint = {
            "ASGI_APPLICATION": "add ASGI_APPLICATION = \"<project>.asgi.application\" (Channels' installation docs)",
            "WSGI_APPLICATION": "add WSGI_APPLICATION = \"<project>.wsgi.application\" (as startproject writes it)",
        }[setting]
        raise ProjectError(f"the project's settings ({settings.PROJECT_SETTINGS}) have no {setting}: {hint}")
    try:
        return import_string(path)
    except Exception as exc:  # noqa: BLE001 - any failure of the project's code is reported the same way
        raise ProjectError(f"{setting} {path!r} cannot be loaded: {describe(exc, settings.PROJECT_DIR)}") from exc


def preflight():
    """Set Django up and load the project's URL routes, WSGI and ASGI applications.

    Returns a one-line summary (str). Raises :class:`ProjectError` on the first
    failure, with a one-line message.
    """
    import django

    from switchyard.upstream import UntestedUpstream

    try:
        django.setup()
    except UntestedUpstream as exc:
        raise ProjectError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001
        raise ProjectError(f"the project's settings cannot be loaded: {describe(exc)}") from exc
    from django.conf import settings
    from django.urls import get_resolver

    try:
        get_resolver().url_patterns  # imports ROOT_URLCONF and everything it includes
    except Exception as exc:  # noqa: BLE001
        raise ProjectError(f"ROOT_URLCONF {settings.ROOT_URLCONF!r} cannot be loaded: "
                           f"{describe(exc, settings.PROJECT_DIR)}") from exc
    load_application("WSGI_APPLICATION")
    load_application("ASGI_APPLICATION")
    return (f"project {settings.PROJECT_DIR}: settings {settings.PROJECT_SETTINGS}, "
            f"WSGI {settings.WSGI_APPLICATION}, ASGI {settings.ASGI_APPLICATION}")


def main():
    """Command line of ``python -m switchyard.preflight``: exit 0 and a summary, or 2 and one error line."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "switchyard.settings")
    try:
        summary = preflight()
    except ProjectError as exc:
        print(f"switchyard: the project cannot start: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"switchyard: {summary}", flush=True)
    return 0
