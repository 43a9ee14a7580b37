"""Throwaway servers for the benchmark: moto's SQS and a PostgreSQL cluster.

Built on the classes of ``tests/services.py`` (the test suite's fixtures), which
run each server on a free loopback port and clean up even when this process
dies (their watchdog).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.services import REGION, MotoServer, PostgresServer, _find_postgres_bindir, _free_port

__all__ = ["AWS_ENV", "moto_server", "postgres_server", "postgres_unavailable"]

#: The environment of a process that talks to the moto server (plus AWS_ENDPOINT_URL_SQS).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    """moto in server mode on a free port, recording requests; stopped afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="lambda-tasks-bench-moto-"))
    server = MotoServer(_free_port(), workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot run here, or None."""
    if _find_postgres_bindir() is None:
        return "no initdb/pg_ctl in /usr/lib/postgresql/<version>/bin (apt-get install postgresql)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed in the workspace venv"
    return None


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway cluster (as user postgres when we are root), removed afterwards."""
    bindir = _find_postgres_bindir()
    assert bindir is not None
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="lambda-tasks-bench-pg-", dir="/tmp"))
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(bindir, root, run_as)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
