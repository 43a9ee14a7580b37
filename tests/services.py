"""Throwaway servers for the test suite: a pytest plugin loaded by the root conftest.

Every server runs on a free loopback port, is started by the first test that
needs it and stopped at the end of the session. Nothing is left behind:
fixture finalizers stop the servers, ``atexit`` covers sessions that end
without finalizers, and a small watchdog process covers a test process that
dies outright (SIGKILL, ``os._exit``): when its pipe from this process closes,
it kills and removes whatever is still registered.

Fixtures:

- ``moto_server`` (session) -> :class:`MotoServer`: moto in server mode, in a
  subprocess; ``stop()``/``start()`` for fault injection, request counting
  through moto's recorder.
- ``aws_env`` (function) -> :class:`MotoServer`: AWS environment variables
  pointing boto3 at the moto server; the request recording starts empty.
- ``sqs_queue`` (function) -> queue URL of a fresh standard queue.
- ``sqs_queue_factory`` (function) -> :class:`SqsQueueFactory`.
- ``redis_server`` (session) -> ``redis://127.0.0.1:PORT/0``; ``redis_url``
  (function) flushes it first.
- ``postgres_server`` (session) -> :class:`PostgresServer`; ``postgres_dsn``
  (function) -> DSN of a fresh, uniquely named database.
- ``django_db_modify_db_settings`` (override of pytest-django's): with
  ``LAMBDA_TASKS_TEST_DB=postgres`` the Django test database lives on
  ``postgres_server``.

A missing server binary skips the tests that need it, with a reason naming the
package to install; with ``LAMBDA_TASKS_REQUIRE_SERVICES=1`` it fails them.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, cast

import pytest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

    QueueAttributes = dict[QueueAttributeNameType, str]

__all__ = [
    "MotoServer",
    "PostgresServer",
    "SqsQueueFactory",
    "aws_env",
    "django_db_modify_db_settings",
    "moto_server",
    "postgres_dsn",
    "postgres_server",
    "redis_server",
    "redis_url",
    "sqs_queue",
    "sqs_queue_factory",
]

REQUIRE_SERVICES_ENV = "LAMBDA_TASKS_REQUIRE_SERVICES"
TEST_DB_ENV = "LAMBDA_TASKS_TEST_DB"
PG_PORT_ENV = "LAMBDA_TASKS_TEST_PG_PORT"
PG_NAME_ENV = "LAMBDA_TASKS_TEST_PG_NAME"
PG_BIN_ENV = "LAMBDA_TASKS_PG_BIN"

REGION = "us-east-1"
_START_TIMEOUT = 60.0
_STOP_GRACE = 5.0


def _missing(what: str, how_to_install: str) -> NoReturn:
    """Skip the requesting test because ``what`` is not installed (fail when required)."""
    message = f"{what} is not available; install it to run this test ({how_to_install})"
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_SERVICES_ENV}=1 makes this an error", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _terminate(process: subprocess.Popen[bytes], grace: float = _STOP_GRACE) -> None:
    """Stop a process started with ``start_new_session=True`` (its whole process group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --------------------------------------------------------------------------- cleanup

# Runs in its own process. Reads JSON lines ["add", key, steps] / ["drop", key]
# from stdin; at end of input (the test process is gone) performs the steps of
# every key still registered, newest first.
_WATCHDOG_SOURCE = """\
import json, os, shutil, signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
pending = {}
for line in sys.stdin:
    op, key, steps = json.loads(line)
    if op == "add":
        pending[key] = steps
    else:
        pending.pop(key, None)
for steps in reversed(list(pending.values())):
    for kind, arg in steps:
        try:
            if kind == "killpg":
                os.killpg(arg, signal.SIGKILL)
            elif kind == "killpidfile":
                with open(arg) as pidfile:
                    os.kill(int(pidfile.readline()), signal.SIGQUIT)
            elif kind == "run":
                subprocess.run(arg, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=60, check=False)
            elif kind == "rmtree":
                shutil.rmtree(arg, ignore_errors=True)
        except Exception:
            pass
"""

# One fallback step for the watchdog: ("killpg", pgid), ("run", argv),
# ("killpidfile", path: SIGQUIT to the pid on its first line), ("rmtree", path).
Step = tuple[str, int | str | list[str]]


class _Janitor:
    """Cleanup registry: normal teardown, ``atexit``, and a watchdog for hard deaths."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._actions: dict[str, Callable[[], None]] = {}
        self._watchdog: subprocess.Popen[bytes] | None = None
        atexit.register(self.cleanup_all)

    def register(self, key: str, action: Callable[[], None], fallback: list[Step]) -> None:
        """``action`` cleans up in this process; ``fallback`` if this process dies first."""
        self._actions[key] = action
        self._tell(["add", key, fallback], start=True)

    def unregister(self, key: str) -> None:
        self._actions.pop(key, None)
        self._tell(["drop", key, []], start=False)

    def _tell(self, message: list[Any], *, start: bool) -> None:
        watchdog = self._watchdog
        if watchdog is None or watchdog.poll() is not None:
            if not start:
                return
            watchdog = self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG_SOURCE],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        assert watchdog.stdin is not None
        with contextlib.suppress(OSError):
            watchdog.stdin.write(json.dumps(message).encode() + b"\n")
            watchdog.stdin.flush()

    def cleanup_all(self) -> None:
        if os.getpid() != self._pid:  # a forked child exiting must not stop our servers
            return
        for key in reversed(list(self._actions)):
            action = self._actions.pop(key, None)
            if action is not None:
                with contextlib.suppress(Exception):
                    action()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            assert watchdog.stdin is not None
            with contextlib.suppress(OSError):
                watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(30)


_JANITOR = _Janitor()


def _make_tempdir(prefix: str, directory: str | None = None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
    _JANITOR.register(
        f"dir:{path}", lambda: shutil.rmtree(path, ignore_errors=True), [("rmtree", str(path))]
    )
    return path


def _remove_tempdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _JANITOR.unregister(f"dir:{path}")


# --------------------------------------------------------------------------- moto

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Queue attributes that CreateQueue accepts (the others are read-only).
_SETTABLE_QUEUE_ATTRIBUTES = frozenset(
    {
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "Policy",
        "ReceiveMessageWaitTimeSeconds",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    }
)
# Set after every queue exists again (they name other queues).
_LINKING_QUEUE_ATTRIBUTES: tuple[QueueAttributeNameType, ...] = (
    "RedrivePolicy",
    "RedriveAllowPolicy",
)


def _action_of(entry: dict[str, Any]) -> str | None:
    """The AWS API action of one recorded request (JSON or query protocol)."""
    headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
    target = headers.get("x-amz-target")
    if target:
        return target.rpartition(".")[2]
    url = str(entry.get("url") or "")
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    if "Action" in params:
        return params["Action"][0]
    if "x-www-form-urlencoded" in headers.get("content-type", ""):
        body = str(entry.get("body") or "")
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        params = urllib.parse.parse_qs(body)
        if "Action" in params:
            return params["Action"][0]
    return None


class MotoServer:
    """moto in server mode, running in a subprocess on a fixed loopback port.

    ``stop()`` kills the server (clients then get connection errors) and
    ``start()`` brings it back on the same port. moto keeps its state in
    memory, so a restart loses it; ``start()`` re-creates the SQS queues that
    existed at ``stop()`` (same names, URLs and attributes) but not their
    messages.

    Every request is recorded (moto's ``/moto-api/recorder/``):
    ``request_count("SendMessageBatch")`` counts calls since the last
    ``reset_recording()`` (``aws_env`` resets it for each test).
    """

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{port}"
        self.workdir = workdir
        self.log_file = workdir / "moto.log"
        self._recording_file = workdir / "recording.jsonl"
        self._process: subprocess.Popen[bytes] | None = None
        self._saved_queues: list[tuple[str, QueueAttributes]] = []
        self._key = f"moto:{port}"

    def __repr__(self) -> str:
        return f"<MotoServer {self.url} {'running' if self.is_running() else 'stopped'}>"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (a no-op while it runs) and wait until it answers."""
        if self.is_running():
            return
        self._recording_file.touch()
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(self._recording_file))
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
            env.pop(name, None)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._process = process
        _JANITOR.register(self._key, self.stop, [("killpg", process.pid)])
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if process.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"moto server on port {self.port} exited with {process.returncode}:\n"
                    + _tail(self.log_file)
                )
            try:
                self._call("POST", "/moto-api/recorder/start-recording", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"moto server on port {self.port} did not answer within "
                        f"{_START_TIMEOUT:.0f} s:\n" + _tail(self.log_file)
                    ) from None
                time.sleep(0.05)
        self._restore_queues()

    def stop(self) -> None:
        """Stop the server; requests then fail with connection errors until ``start()``."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(Exception):
                self._saved_queues = self._snapshot_queues()
        self._process = None
        _terminate(process)
        _JANITOR.unregister(self._key)

    def reset(self) -> None:
        """Forget every resource (moto's ``/moto-api/reset``)."""
        self._call("POST", "/moto-api/reset")

    def reset_recording(self) -> None:
        """Forget the requests recorded so far."""
        self._call("POST", "/moto-api/recorder/reset-recording")

    def recording(self) -> list[dict[str, Any]]:
        """The requests recorded since the last reset, oldest first (moto's format)."""
        text = self._call("GET", "/moto-api/recorder/download-recording").decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def requests(self) -> list[str | None]:
        """The API action of each recorded AWS request (``None`` when it has no action)."""
        return [
            _action_of(entry)
            for entry in self.recording()
            if not urllib.parse.urlsplit(str(entry.get("url") or "")).path.startswith("/moto-api/")
        ]

    def request_count(self, action: str | None = None) -> int:
        """How many AWS requests (of ``action``, e.g. ``"SendMessageBatch"``) were recorded."""
        actions = self.requests()
        if action is None:
            return len(actions)
        return actions.count(action)

    def sqs_client(self) -> SQSClient:
        """A boto3 SQS client for this server that fails fast instead of retrying."""
        import boto3
        from botocore.config import Config

        client: SQSClient = boto3.client(
            "sqs",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            config=Config(
                connect_timeout=2, read_timeout=10, retries={"max_attempts": 1, "mode": "standard"}
            ),
        )
        return client

    def _call(self, method: str, path: str, timeout: float = 10.0) -> bytes:
        request = urllib.request.Request(
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def _snapshot_queues(self) -> list[tuple[str, QueueAttributes]]:
        client = self.sqs_client()
        queues: list[tuple[str, QueueAttributes]] = []
        for url in client.list_queues().get("QueueUrls", []):
            attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            queues.append((url.rsplit("/", 1)[1], dict(attributes.get("Attributes", {}))))
        return queues

    def _restore_queues(self) -> None:
        saved, self._saved_queues = self._saved_queues, []
        if not saved:
            return
        client = self.sqs_client()
        for name, attributes in saved:
            settable = {k: v for k, v in attributes.items() if k in _SETTABLE_QUEUE_ATTRIBUTES}
            client.create_queue(QueueName=name, Attributes=settable)
        for name, attributes in saved:
            linking: QueueAttributes = {
                k: attributes[k] for k in _LINKING_QUEUE_ATTRIBUTES if attributes.get(k)
            }
            if linking:
                url = client.get_queue_url(QueueName=name)["QueueUrl"]
                client.set_queue_attributes(QueueUrl=url, Attributes=linking)


class SqsQueueFactory(Protocol):
    """Creates a fresh SQS queue on the moto server and returns its URL."""

    def __call__(
        self, name_prefix: str = "q", fifo: bool = False, **attributes: str | int | bool
    ) -> str: ...


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's server mode in a subprocess for the whole session."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        _missing("moto's server mode", "uv sync (dev dependency moto[server])")
    workdir = _make_tempdir("lambda-tasks-moto-")
    server = MotoServer(_free_port(), workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _remove_tempdir(workdir)


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Point boto3 (in this process and its children) at the moto server.

    Restarts the server if an earlier test left it stopped and starts each test
    with an empty request recording.
    """
    moto_server.start()
    moto_server.reset_recording()
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    # Keep a developer's ~/.aws and the instance metadata service out of the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server


@pytest.fixture
def sqs_queue_factory(aws_env: MotoServer) -> Iterator[SqsQueueFactory]:
    """``make(name_prefix="q", fifo=False, **attributes) -> url``: a new queue per call.

    Names are unique (moto allows one PurgeQueue per minute, so tests never
    purge); the queues are deleted after the test.
    """
    client = aws_env.sqs_client()
    created: list[str] = []

    def make(name_prefix: str = "q", fifo: bool = False, **attributes: str | int | bool) -> str:
        name = f"{name_prefix[:60]}-{uuid.uuid4().hex[:12]}"
        values = cast(
            "QueueAttributes",
            {
                key: (str(value).lower() if isinstance(value, bool) else str(value))
                for key, value in attributes.items()
            },
        )
        if fifo:
            name += ".fifo"
            values["FifoQueue"] = "true"
        url = client.create_queue(QueueName=name, Attributes=values)["QueueUrl"]
        created.append(url)
        return url

    yield make
    if aws_env.is_running():
        for url in created:
            with contextlib.suppress(Exception):
                client.delete_queue(QueueUrl=url)


@pytest.fixture
def sqs_queue(sqs_queue_factory: SqsQueueFactory) -> str:
    """URL of a fresh standard queue on the moto server."""
    return sqs_queue_factory("test")


# --------------------------------------------------------------------------- redis


def _wait_for_redis(process: subprocess.Popen[bytes], port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=2)
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if client.ping():
                    return True
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A throwaway redis-server; returns ``redis://127.0.0.1:PORT/0``."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server", "Debian/Ubuntu: apt-get install redis-server")
    workdir = _make_tempdir("lambda-tasks-redis-")
    log_file = workdir / "redis.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # the port may be taken between choosing and binding
            port = _free_port()
            argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"]
            argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
            with open(log_file, "ab") as log:
                process = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _JANITOR.register(
                f"redis:{workdir}",
                functools.partial(_terminate, process),
                [("killpg", process.pid)],
            )
            if _wait_for_redis(process, port):
                break
            _terminate(process)
        else:
            raise RuntimeError("redis-server did not start:\n" + _tail(log_file))
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process is not None:
            _terminate(process)
        _JANITOR.unregister(f"redis:{workdir}")
        _remove_tempdir(workdir)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The redis server's URL, after FLUSHALL."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server


# --------------------------------------------------------------------------- PostgreSQL


def _find_postgres_bindir() -> Path | None:
    override = os.environ.get(PG_BIN_ENV)
    if override:
        candidates = [Path(override)]
    else:

        def version(path: Path) -> int:
            name = path.parent.name
            return int(name) if name.isdigit() else 0

        found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        candidates = [Path("/usr/lib/postgresql/15/bin"), *found]
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


class PostgresServer:
    """A throwaway PostgreSQL cluster listening on 127.0.0.1 (trust auth, user postgres)."""

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, bindir: Path, root: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.run_as = run_as
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.log_file = root / "postgres.log"
        self.port = 0

    def __repr__(self) -> str:
        return f"<PostgresServer {self.host}:{self.port} {self.data_dir}>"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection URI for ``dbname`` on this cluster."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, *, exist_ok: bool = False) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is not None and exist_ok:
                return
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def command(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bindir / program), *args]
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        return argv

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            self.command(program, *args),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{_tail(self.log_file)}"
            )

    def initdb(self) -> None:
        self._run(
            "initdb",
            "--pgdata",
            str(self.data_dir),
            "--username",
            self.user,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            "--no-instructions",
        )
        self.socket_dir.mkdir()
        if self.run_as is not None:
            user = pwd.getpwnam(self.run_as)
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# lambda-tasks test cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "max_connections = 200\n"
            )

    def start(self) -> None:
        """Start the cluster on a free port and wait until it accepts connections."""
        for attempt in range(3):  # the port may be taken between choosing and binding
            port = _free_port()
            try:
                self._run(
                    "pg_ctl",
                    "--pgdata",
                    str(self.data_dir),
                    "--log",
                    str(self.log_file),
                    "--options",
                    f"-p {port}",
                    "--wait",
                    "--timeout",
                    "60",
                    "--silent",
                    "start",
                )
            except RuntimeError:
                if attempt == 2 or "already in use" not in _tail(self.log_file):
                    raise
            else:
                self.port = port
                return

    def stop_command(self) -> list[str]:
        return self.command(
            "pg_ctl", "--pgdata", str(self.data_dir), "--mode", "immediate", "--wait", "stop"
        )

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                self.stop_command(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
            )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (run as the ``postgres`` user when we are root)."""
    bindir = _find_postgres_bindir()
    if bindir is None:
        _missing(
            "PostgreSQL server (initdb and pg_ctl in /usr/lib/postgresql/<version>/bin)",
            "Debian/Ubuntu: apt-get install postgresql",
        )
    run_as: str | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            _missing("runuser (to run PostgreSQL as user postgres)", "apt-get install util-linux")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _missing("the postgres system user", "Debian/Ubuntu: apt-get install postgresql")
        run_as = "postgres"
    # Outside pytest's temp dirs, which only root may enter.
    root = _make_tempdir("lambda-tasks-pg-", "/tmp")
    if run_as is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(bindir, root, run_as)
    key = f"postgres:{root}"
    fallback: list[Step] = [
        ("run", server.stop_command()),
        ("killpidfile", str(server.data_dir / "postmaster.pid")),
    ]
    _JANITOR.register(key, server.stop, fallback)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        server.stop()
        _JANITOR.unregister(key)
        _remove_tempdir(root)


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """DSN of a new, uniquely named database on the cluster (dropped after the test)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    try:
        yield postgres_server.dsn(name)
    finally:
        postgres_server.drop_database(name)


# --------------------------------------------------------------------------- Django


def _use_postgres_for_django(server: PostgresServer) -> None:
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, connections

    server.create_database("lambda_tasks", exist_ok=True)
    for conn in connections.all(initialized_only=True):
        if conn.alias == DEFAULT_DB_ALIAS:
            conn.close()
            del connections[DEFAULT_DB_ALIAS]
    # In place: Django's connection handler holds these very dicts.
    default = settings.DATABASES[DEFAULT_DB_ALIAS]
    default.clear()
    default.update(
        {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": server.host,
            "PORT": str(server.port),
            "NAME": "lambda_tasks",
            "USER": server.user,
            "TEST": {"NAME": "test_lambda_tasks"},
        }
    )
    connections.configure_settings(settings.DATABASES)  # restores the defaults Django adds


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """pytest-django's hook to modify DATABASES, extended for ``LAMBDA_TASKS_TEST_DB=postgres``.

    By default this is pytest-django's behaviour (the tox/xdist test-database
    suffixes). With ``LAMBDA_TASKS_TEST_DB=postgres`` the default database moves
    to ``postgres_server`` first (so the suffixes apply to it), and
    ``LAMBDA_TASKS_TEST_PG_PORT``/``_NAME`` tell child processes, whose settings
    read them, to open the same test database.
    """
    from pytest_django.lazy_django import skip_if_no_django

    skip_if_no_django()
    choice = os.environ.get(TEST_DB_ENV, "").strip().lower()
    if choice not in ("", "sqlite", "postgres"):
        pytest.fail(f"{TEST_DB_ENV}={choice!r}: expected 'postgres' or 'sqlite'", pytrace=False)
    if choice != "postgres":
        request.getfixturevalue("django_db_modify_db_settings_parallel_suffix")
        yield
        return

    from django.conf import settings

    server: PostgresServer = request.getfixturevalue("postgres_server")
    _use_postgres_for_django(server)
    request.getfixturevalue("django_db_modify_db_settings_parallel_suffix")
    test_name = str(settings.DATABASES["default"]["TEST"]["NAME"])  # type: ignore[index]
    saved = {name: os.environ.get(name) for name in (PG_PORT_ENV, PG_NAME_ENV)}
    os.environ[PG_PORT_ENV] = str(server.port)
    os.environ[PG_NAME_ENV] = test_name
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
