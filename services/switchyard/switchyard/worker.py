"""Identity of the serving process."""

import os
import socket


def worker_id():
    """Return ``"<host>:<pid>"`` naming this process (str).

    The welcome frame carries it so that a client, a test or an operator can
    tell which ASGI worker holds a socket. Computed on each call: the pid of a
    forked worker differs from its parent's.
    """
    return f"{socket.gethostname()}:{os.getpid()}"
