"""The ``[container]`` extra: ``python -m awslambdaric lambda_tasks_handler.handler``.

The real awslambdaric runs in a subprocess against a small stand-in for the
Lambda Runtime API on loopback (``GET .../invocation/next``, ``POST
.../invocation/{id}/response`` and ``/error``, ``POST .../init/error``), as in
a container image started by Lambda.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lambda_tasks_core import record_id
from lambda_tasks_django.models import TaskRecord
from tests.handler.events import event, record, task_body

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
API = "/2018-06-01/runtime"


@dataclass
class Posted:
    """What the runtime posted back: ``kind`` is response, error or init-error."""

    kind: str
    request_id: str | None
    body: Any


class RuntimeApi:
    """Hands out queued events one by one and collects what the runtime posts back."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.posted: queue.Queue[Posted] = queue.Queue()
        self.closed = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self.send_error(404)
                    return
                while not api.closed.is_set():  # long poll, as Lambda does between events
                    try:
                        next_event = api.events.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    break
                else:
                    self.send_error(503)
                    return
                payload = json.dumps(next_event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                deadline_ms = int((time.time() + 60) * 1000)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:tasks",
                )
                self.send_header(
                    "Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"
                )
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parts = self.path.removeprefix(f"{API}/").split("/")
                if parts == ["init", "error"]:
                    posted = Posted("init-error", None, json.loads(raw or b"null"))
                elif (
                    len(parts) == 3
                    and parts[0] == "invocation"
                    and parts[2] in ("response", "error")
                ):
                    posted = Posted(parts[2], parts[1], json.loads(raw or b"null"))
                else:
                    self.send_error(404)
                    return
                api.posted.put(posted)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def invoke(self, lambda_event: dict[str, Any], timeout: float = 60) -> Posted:
        self.events.put(lambda_event)
        return self.posted.get(timeout=timeout)

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApi]:
    api = RuntimeApi()
    yield api
    api.close()


def start_runtime(api: RuntimeApi, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "lambda_tasks_handler.handler"],
        cwd=ROOT,
        env={
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "tasks",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=30)
    return output


def test_awslambdaric_runs_an_sqs_event_end_to_end(runtime_api: RuntimeApi) -> None:
    process = start_runtime(runtime_api)
    try:
        good = record(task_body("add", a=20, b=22), invocation_id="container")
        poison = record("not json")
        posted = runtime_api.invoke(event(good, poison))
        again = runtime_api.invoke(event(good))  # a warm invocation: same process
    finally:
        output = stop(process)

    assert posted.kind == "response", output
    assert posted.body == {"batchItemFailures": [{"itemIdentifier": poison["messageId"]}]}
    assert again.body == {"batchItemFailures": []}
    task_record = TaskRecord.objects.get(pk=record_id("container", 0))
    assert task_record.status == TaskRecord.TaskStatus.SUCCEEDED
    assert task_record.result == 42


def test_cold_start_failure_is_an_invocation_error_without_the_secret(
    runtime_api: RuntimeApi,
) -> None:
    leaked = "not-a-reference " + uuid.uuid4().hex  # a value pasted where a reference belongs
    process = start_runtime(runtime_api, LAMBDA_TASKS_SECRET_API_TOKEN=leaked)
    try:
        posted = runtime_api.invoke(event(record(task_body("noop"))))
    finally:
        output = stop(process)

    assert posted.kind == "error", output
    assert posted.body["errorType"] == "ValueError"
    assert "LAMBDA_TASKS_SECRET_API_TOKEN" in posted.body["errorMessage"]
    assert leaked not in json.dumps(posted.body)
    assert leaked not in output
