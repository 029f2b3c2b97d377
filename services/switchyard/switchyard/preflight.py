"""``python -m switchyard.preflight``: check that the project can start, before any process serves it.

Run by every delivery path before migrations and before the servers start
(the native launcher, the compose ``migrate`` service, the Ansible app role).
Exits 0 with a one-line summary, or 2 with one line naming the cause
(see :mod:`switchyard.project`), so that a broken project stops the
deployment instead of sending workers into a restart loop of tracebacks.
"""

import sys

from switchyard.project import main

if __name__ == "__main__":
    sys.exit(main())
