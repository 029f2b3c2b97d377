"""The native mode: the whole split stack on this machine, no Docker.

``scripts/stack up [--project DIR]`` (``python -m deploy.native up``) runs, in
the foreground: Redis, gunicorn, N ASGI workers (daphne or uvicorn, via
``runasgi``) and nginx in front, supervised by supervisord (which restarts a
worker that dies), serving the project in DIR (default: the bundled chat
example) unmodified through Switchyard's settings layer. The database is
SQLite in the run directory unless ``DATABASE_URL`` is set. Ctrl-C or SIGTERM
stops every process.

Modules: :mod:`~deploy.native.config` (what a stack is: the project, ports,
knobs), :mod:`~deploy.native.render` (nginx, supervisord and Redis configs),
:mod:`~deploy.native.stack` (process control), :mod:`~deploy.native.system`
(programs and ports of this machine), :mod:`~deploy.native.cli` (the command
line). The stack tests start stacks through :class:`NativeStack` too, on free
ports in a temporary run directory.
"""

from deploy.native.config import CHAT_PROJECT, Project, StackConfig, StackError
from deploy.native.stack import NativeStack
from deploy.native.system import port_accepts, port_is_free, require_program, wait_for_port

__all__ = ["CHAT_PROJECT", "NativeStack", "Project", "StackConfig", "StackError", "port_accepts", "port_is_free",
           "require_program", "wait_for_port"]
