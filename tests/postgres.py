"""A throwaway PostgreSQL server on loopback, for the benchmark (and any test that needs the production database).

Debian's ``postgresql`` package provides the binaries (``/usr/lib/postgresql/<major>/bin``);
the server runs as the ``postgres`` system user (PostgreSQL refuses to run as
root) on a free port, with its data directory and socket in a temporary
directory that is removed afterwards. Settings are PostgreSQL's defaults, so
``synchronous_commit`` is ``on`` and ``fsync`` too: each commit waits for its
WAL flush, as in production.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager

import psycopg

USER = "switchyard"
DATABASE = "switchyard"


def binaries():
    """Return the directory of the newest installed PostgreSQL's binaries (str); ``RuntimeError`` when none is."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (scripts/bench does)")
    return os.path.dirname(found[-1])


def _as_postgres(command, **kwargs):
    """Run ``command`` (list) as the ``postgres`` user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


@contextmanager
def postgres_server(port):
    """Start PostgreSQL on 127.0.0.1:``port``; yield ``(DATABASE_URL, pid)``; stop it and delete its data.

    ``pid`` is the postmaster's (its backends are its children).

    Raises ``RuntimeError`` when it does not accept connections within 30 s.
    """
    bin_dir = binaries()
    directory = tempfile.mkdtemp(prefix="bench-postgres-")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    data = os.path.join(directory, "data")
    _as_postgres([f"{bin_dir}/initdb", "-D", data, "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-sync"])
    server = subprocess.Popen(
        ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
        + [f"{bin_dir}/postgres", "-D", data, "-p", str(port), "-k", directory, "-c", "listen_addresses=127.0.0.1",
           "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(directory, "server.log"), "w"))
    url = f"postgres://{USER}@127.0.0.1:{port}/{DATABASE}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={port} user={USER} dbname=postgres", autocommit=True) as c:
                    c.execute(f"CREATE DATABASE {DATABASE}")
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL on port {port} did not start: "
                                       + open(os.path.join(directory, "server.log")).read()[-500:]) from None
                time.sleep(0.2)
        yield url, server.pid
    finally:
        server.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown: ends open sessions
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
