"""The dependencies whose private members Switchyard relies on, the versions it was tested with, and the start-up guard.

Four modules reach into their dependencies' internals, each for a reason
its docstring gives:

- ``switchyard.layers``: channels_redis' ``RedisChannelLayer`` (``receive_single``,
  ``_brpop_with_clean``, ``receive_buffer``, ``non_local_name``,
  ``require_valid_channel_name``, ``client_prefix``);
- ``switchyard.fanout``: ``channels_redis.utils``' ``create_pool``,
  ``decode_hosts`` and ``_consistent_hash`` (the same hosts, the same
  sharding as the core layer);
- ``switchyard.daphne_server``: daphne's ``WebSocketProtocol.handle_reply``,
  ``Server.listen_success`` / ``connections`` / ``ws_factory`` /
  ``signal_handlers`` / ``create_application``,
  ``CommandLineInterface.server_class``, autobahn's ``sendCloseFrame``, and
  Twisted's ``tcp.Server`` buffer state (``socket``, ``dataBuffer``,
  ``_tempDataLen``, ``connected``, ``disconnecting``, ``_writeDisconnected``)
  for ``write_now``;
- the chat consumer's ``dispatch`` and ``switchyard.websocket.RefuseUnknownRoutes``:
  Channels' ``AsyncConsumer.__call__`` dispatching through ``self.dispatch``,
  ``get_handler_name``, and ``URLRouter``'s "No route found for path" error.

``services/switchyard/switchyard/tests/test_upstream.py`` has one test per
member, so an upgrade that changes one fails in CI. :func:`check` runs when
Django starts (``SwitchyardConfig.ready``: every process, the preflight
included) and refuses a version outside :data:`TESTED`, so an unpinned
upgrade fails the start with one readable line instead of misbehaving in
production. ``SWITCHYARD_ALLOW_UNTESTED_UPSTREAM=1`` starts anyway (to try a
new release before the pins move).
"""

import os
from importlib.metadata import PackageNotFoundError, version

from django.core.exceptions import ImproperlyConfigured

# Distribution name -> (the minor series tested, what relies on it). Keep in
# step with the pins in services/switchyard/pyproject.toml.
TESTED = {
    "channels": ("4.3", "switchyard.websocket and the chat consumer's dispatch"),
    "channels-redis": ("4.3", "switchyard.layers"),
    "daphne": ("4.2", "switchyard.daphne_server"),
    "twisted": ("26.10", "switchyard.daphne_server's write_now"),
}


class UntestedUpstream(ImproperlyConfigured):
    """A dependency Switchyard reaches into is outside the minor series it was tested with (one line per package)."""


def minor_series(text):
    """Return the ``"MAJOR.MINOR"`` of a version string (``"4.3.2"`` -> ``"4.3"``)."""
    return ".".join(text.split(".")[:2])


def untested(installed=None):
    """Return one line per dependency installed outside its tested minor series (list of str; empty when all fit).

    ``installed`` maps distribution names to version strings (default: what
    ``importlib.metadata`` finds). A dependency that is not installed at all
    is not reported here (its import fails on its own, with its name).
    """
    problems = []
    for name, (series, user) in TESTED.items():
        try:
            found = (installed or {}).get(name) or version(name)
        except PackageNotFoundError:
            continue
        if minor_series(found) != series:
            problems.append(f"{name} {found} is installed, but {user} relies on private members of {name} "
                            f"{series}.x only: install {name}=={series}.* (the lock: "
                            f"services/switchyard/requirements.txt)")
    return problems


def check():
    """Raise :class:`UntestedUpstream` (an ``ImproperlyConfigured``) unless every dependency is in its tested series.

    Skipped when ``SWITCHYARD_ALLOW_UNTESTED_UPSTREAM`` is ``1``.
    """
    if os.environ.get("SWITCHYARD_ALLOW_UNTESTED_UPSTREAM") == "1":
        return
    problems = untested()
    if problems:
        raise UntestedUpstream("; ".join(problems) + " (or set SWITCHYARD_ALLOW_UNTESTED_UPSTREAM=1 to try it)")
