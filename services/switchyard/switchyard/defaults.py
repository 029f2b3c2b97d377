"""The shared defaults (``defaults.env`` beside this module) and the environment read over them.

``defaults.env`` is the one source of the facts every delivery path shares
(ports, worker counts, ping interval, drain timeout, WebSocket path
prefixes). The runtime reads it here; ``deploy/`` imports :data:`DEFAULTS_FILE`
and :func:`load`; compose and Ansible read the file itself.
"""

from pathlib import Path

import environ

DEFAULTS_FILE = Path(__file__).resolve().with_name("defaults.env")


class _FileValues(environ.Env):
    """django-environ's ``read_env`` parser, filling a dict of its own instead of ``os.environ``."""

    ENVIRON = {}


def load(path=DEFAULTS_FILE):
    """Return the ``KEY=VALUE`` lines of ``path`` (a ``defaults.env``-style file) as a dict of str.

    Raises ``OSError`` when the file cannot be read.
    """
    path = Path(path)
    path.stat()  # read_env only warns about a missing file; a missing default is an error here
    _FileValues.ENVIRON = {}
    _FileValues.read_env(str(path), overwrite=True)
    return dict(_FileValues.ENVIRON)


def env(environ_values=None):
    """Return a ``environ.Env`` reading ``environ_values`` (default ``os.environ``) over :func:`load`'s defaults.

    A variable set in the environment wins over its line in ``defaults.env``.
    """
    import os

    reader = environ.Env()
    reader.ENVIRON = {**load(), **(os.environ if environ_values is None else environ_values)}
    return reader
