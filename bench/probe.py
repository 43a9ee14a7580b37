"""One measurement in one fresh process, run by ``python -m bench`` in a side's venv.

    python -m bench.probe MEASURE --side {ours,reference} --out result.json [options]

The parent (``bench/run.py``) starts this module with the Python of the side's
virtual environment, the repository root on ``PYTHONPATH`` (for the
``bench.projects`` Django projects only: the packages under test come from the
venv) and ``DJANGO_SETTINGS_MODULE`` set to the side's project. The result is
written as JSON to ``--out``.

Only the standard library is imported at module level: the clock of the cold
start measure starts at the top of ``main``, and a spawned local-mode worker
re-imports this module as its main module.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sqlite3
import statistics
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MEASURES = ("migrate", "throughput", "local-burst", "local-first", "oncommit")


@dataclass(frozen=True)
class Side:
    """What differs between the two packages, as seen by a benchmark."""

    name: str
    settings: str
    handler_module: str
    task_module: str
    task_name: str
    #: Whether the side's sender adds the ``lambda_tasks_invocation_id`` attribute.
    sends_invocation_id: bool


SIDES = {
    "ours": Side(
        name="ours",
        settings="bench.projects.ours.settings",
        handler_module="lambda_tasks_handler",
        task_module="bench.projects.ours.app.tasks",
        task_name="bench.projects.ours.app.tasks.noop",
        sends_invocation_id=True,
    ),
    "reference": Side(
        name="reference",
        settings="bench.projects.reference.settings",
        handler_module="lambda_tasks.handler",
        task_module="bench.projects.reference.app.tasks",
        task_name="bench.projects.reference.app.tasks.noop",
        sends_invocation_id=False,
    ),
}

INVOCATION_ID_ATTRIBUTE = "lambda_tasks_invocation_id"
TABLE = "lambda_tasks_taskrecord"


class LambdaContext:
    """A stand-in for the Lambda context object (15-minute function timeout)."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def __init__(self, timeout_ms: int = 900_000) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------- helpers


def setup_django() -> None:
    import django

    django.setup()


def sqs_record(side: Side, body: str) -> dict[str, Any]:
    """One SQS event-source record, shaped as Lambda delivers it."""
    message_id = str(uuid.uuid4())
    attributes: dict[str, Any] = {}
    if side.sends_invocation_id:
        attributes[INVOCATION_ID_ATTRIBUTE] = {
            "stringValue": str(uuid.uuid4()),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    return {
        "messageId": message_id,
        "receiptHandle": f"bench-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(time.time() * 1000)),
            "SenderId": "AIDABENCH",
            "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
        },
        "messageAttributes": attributes,
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench",
        "awsRegion": "us-east-1",
    }


def noop_body(side: Side) -> str:
    return json.dumps({"task_name": side.task_name, "kwargs": {}, "n_retries": 0})


def sqlite_path() -> str:
    url = os.environ["BENCH_DATABASE"]
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "sqlite":
        raise SystemExit(f"this measure needs a SQLite BENCH_DATABASE, got {url!r}")
    return "/" + parts.path.lstrip("/")


def count_records(path: str, status: str | None = None) -> int:
    """Records in the SQLite file, read with a separate plain sqlite3 connection."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
        if status is None:
            row = conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()
        else:
            row = conn.execute(
                f"SELECT COUNT(*) FROM {TABLE} WHERE status = ?", (status,)
            ).fetchone()
    return int(row[0])


def status_counts_django() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status, COUNT(*) FROM {TABLE} GROUP BY status")
        return {str(status): int(n) for status, n in cursor.fetchall()}


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


# --------------------------------------------------------------------------- measures


def measure_migrate(side: Side, args: argparse.Namespace) -> dict[str, Any]:
    setup_django()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return {"seconds": time.perf_counter() - started}


def measure_throughput(side: Side, args: argparse.Namespace) -> dict[str, Any]:
    """``--messages`` no-op messages in batches of ``--batch``, cold start excluded."""
    module = importlib.import_module(side.handler_module)
    module.handler({"Records": []}, LambdaContext())  # the cold start: not measured

    from django.db import connection
    from django.db.backends.signals import connection_created

    statements: dict[str, int] = {}
    connects = 0

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
        statements[verb] = statements.get(verb, 0) + 1
        return execute(sql, params, many, context)

    def on_connect(**_: Any) -> None:
        nonlocal connects
        connects += 1

    body = noop_body(side)
    batches = [
        {"Records": [sqs_record(side, body) for _ in range(args.batch)]}
        for _ in range(args.messages // args.batch)
    ]
    # Counted apart from the timed run: an execute wrapper is instrumentation that
    # costs every statement, and it takes our writes off their direct path.
    counted = {"Records": [sqs_record(side, body) for _ in range(args.batch)]}
    connection.execute_wrappers.append(count)
    failures = len(module.handler(counted, LambdaContext())["batchItemFailures"])
    connection.execute_wrappers.remove(count)
    counted_messages = len(counted["Records"])

    connection_created.connect(on_connect)
    started = time.perf_counter()
    for event in batches:
        failures += len(module.handler(event, LambdaContext())["batchItemFailures"])
    elapsed = time.perf_counter() - started
    connection_created.disconnect(on_connect)

    messages = sum(len(event["Records"]) for event in batches)
    counts = status_counts_django()
    floor, skeleton = _write_floor(messages) if args.floor else (None, None)
    data = sum(
        n for verb, n in statements.items() if verb in {"SELECT", "INSERT", "UPDATE", "DELETE"}
    )
    return {
        "messages": messages,
        "counted_messages": counted_messages,
        "seconds": elapsed,
        "messages_per_s": messages / elapsed,
        "batch_failures": failures,
        "statuses": counts,
        "statements": statements,
        "queries_per_message": data / counted_messages,
        "statements_per_message": sum(statements.values()) / counted_messages,
        "connections_opened": connects,
        "db_vendor": connection.vendor,
        "driver": _driver(connection.vendor),
        "floor_messages_per_s": floor,
        "skeleton_messages_per_s": skeleton,
    }


def _write_floor(messages: int) -> tuple[float, float]:
    """Messages/s if a message cost nothing but its writes (SPEC §4: RUNNING, outcome).

    Bare INSERT of a whole TaskRecord row, then UPDATE of its outcome, each in
    autocommit (one durable commit each), through Django's cursor with every
    parameter prepared beforehand: no parsing, no ORM, no task. Half the
    messages time that alone, the other half the SPEC §4 skeleton: the same
    with an empty ``transaction.atomic()`` block and an alarm armed and
    disarmed between the two writes.
    """
    from django.db import connection, transaction
    from django.utils import timezone

    table = connection.ops.quote_name(TABLE)
    columns = [
        str(column.name)
        for column in connection.introspection.get_table_description(connection.cursor(), TABLE)
    ]
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    insert = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join(['%s'] * len(columns))})"
    update = (
        f"UPDATE {table} SET status = %s, result = %s, traceback = %s, end_time = %s WHERE id = %s"
    )
    now = timezone.now()
    values = {
        "kwargs": "{}",
        "n_retries": 0,
        "status": "RUNNING",
        "start_time": now,
        "task_name": "bench.floor",
        "queue": "default",
        "invocation_id": "x",
    }
    half = messages // 2
    rows: list[tuple[Any, list[Any]]] = []
    for _ in range(messages):
        pk = uuid.uuid4()
        key = pk.hex if connection.vendor == "sqlite" else pk
        rows.append((key, [key if c == "id" else values.get(c) for c in columns]))
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for key, params in rows[:half]:
            cursor.execute(insert, params)
            cursor.execute(update, ["SUCCEEDED", None, None, now, key])
        writes = half / (time.perf_counter() - started)
        # SPEC §4 also runs the task inside transaction.atomic() (under these settings
        # BEGIN IMMEDIATE ... COMMIT) with its time limit armed: add exactly that.
        started = time.perf_counter()
        for key, params in rows[half:]:
            cursor.execute(insert, params)
            with transaction.atomic():
                signal.setitimer(signal.ITIMER_REAL, 900)
                signal.setitimer(signal.ITIMER_REAL, 0)
            cursor.execute(update, ["SUCCEEDED", None, None, now, key])
        skeleton = (messages - half) / (time.perf_counter() - started)
    return writes, skeleton


def _driver(vendor: str) -> str:
    if vendor != "postgresql":
        return f"sqlite3 {sqlite3.sqlite_version}"
    import psycopg

    return f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__})"


def _submit(side: Side) -> Callable[[], object]:
    task = importlib.import_module(side.task_module).noop
    submit: Callable[[], object] = task.execute_on_commit
    return submit


def _shutdown_local(side: Side) -> None:
    if side.name == "ours":
        importlib.import_module("lambda_tasks_local").shutdown()
    else:
        pool = importlib.import_module("lambda_tasks.local_executor")._pool
        if pool is not None:
            pool.shutdown(wait=True)


def _wait_for(path: str, target: int, poll_s: float, timeout_s: float) -> float:
    """Poll until ``target`` records are finished; returns the perf_counter time seen."""
    deadline = time.perf_counter() + timeout_s
    while True:
        finished = count_records(path) - count_records(path, "RUNNING")
        now = time.perf_counter()
        if finished >= target:
            return now
        if now > deadline:
            raise SystemExit(f"only {finished} of {target} tasks finished within {timeout_s} s")
        time.sleep(poll_s)


def measure_local_burst(side: Side, args: argparse.Namespace) -> dict[str, Any]:
    """``--tasks`` submits in a row from the "server"; per-call latency and wall time."""
    setup_django()
    from django.db import connections

    path = sqlite_path()
    submit = _submit(side)
    connections.close_all()  # like a fresh server process: no connection to inherit
    already = 0
    if args.warm:
        # Steady state: the pool is up (one task has run) before the burst starts.
        submit()
        _wait_for(path, 1, 0.002, args.timeout)
        already = 1
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(args.tasks):
        before = time.perf_counter()
        submit()
        latencies.append(time.perf_counter() - before)
    submitted = time.perf_counter()
    finished = _wait_for(path, args.tasks + already, 0.01, args.timeout)
    statuses = {status: count_records(path, status) for status in ("SUCCEEDED", "FAILED")}
    _shutdown_local(side)
    return {
        "tasks": args.tasks,
        "submit_p50_s": statistics.median(latencies),
        "submit_p99_s": percentile(latencies, 0.99),
        "submit_max_s": max(latencies),
        "first_submit_s": latencies[0],
        "submit_total_s": submitted - started,
        "wall_s": finished - started,
        "statuses": statuses,
    }


def measure_local_first(side: Side, args: argparse.Namespace) -> dict[str, Any]:
    """Time from the first submit of a fresh server process to the first finished task."""
    setup_django()
    from django.db import connections

    path = sqlite_path()
    submit = _submit(side)
    connections.close_all()
    pool_ready_s = None
    if args.prestart:
        # As ``runserver`` does with "lambda_tasks_local" installed: the pool starts
        # with the server, in the background; the first request comes once it is ready.
        local = importlib.import_module("lambda_tasks_local")
        begun = time.perf_counter()
        local.start()
        while True:
            state = local.state()
            if state is not None and len(state.ready_pids) >= state.workers:
                break
            if time.perf_counter() - begun > args.timeout:
                raise SystemExit("the pool did not get ready")
            time.sleep(0.002)
        pool_ready_s = time.perf_counter() - begun
    started = time.perf_counter()
    submit()
    submit_s = time.perf_counter() - started
    finished = _wait_for(path, 1, 0.002, args.timeout)
    status = count_records(path, "SUCCEEDED")
    _shutdown_local(side)
    return {
        "first_task_s": finished - started,
        "submit_s": submit_s,
        "succeeded": status,
        "pool_ready_s": pool_ready_s,
    }


def _moto(path: str, method: str = "POST") -> bytes:
    endpoint = os.environ["AWS_ENDPOINT_URL_SQS"].rstrip("/")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(endpoint + path, method=method), timeout=30) as reply:
        body: bytes = reply.read()
        return body


def _recorded_calls() -> dict[str, int]:
    """AWS calls recorded by moto since the last reset, by action."""
    calls: dict[str, int] = {}
    for line in _moto("/moto-api/recorder/download-recording", "GET").decode().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        url = str(entry.get("url") or "")
        if urllib.parse.urlsplit(url).path.startswith("/moto-api/"):
            continue
        headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
        action = headers.get("x-amz-target", "").rpartition(".")[2] or "?"
        calls[action] = calls.get(action, 0) + 1
    return calls


def measure_oncommit(side: Side, args: argparse.Namespace) -> dict[str, Any]:
    """``--calls`` execute_on_commit calls in one transaction, sent to moto's SQS at commit.

    Each repetition uses a fresh queue. The first repetition (``cold``) of the
    process is reported apart: it includes building the SQS client.
    """
    setup_django()
    import boto3
    from django.db import transaction
    from django.test.utils import override_settings

    admin = boto3.client("sqs")
    submit = _submit(side)
    runs: list[dict[str, Any]] = []
    for rep in range(args.repeats + 1):
        queue_url = admin.create_queue(QueueName=f"bench-{side.name}-{uuid.uuid4().hex[:12]}")[
            "QueueUrl"
        ]
        with override_settings(LAMBDA_TASKS_QUEUES={"default": queue_url}):
            _moto("/moto-api/recorder/reset-recording")
            started = time.perf_counter()
            with transaction.atomic():
                for _ in range(args.calls):
                    submit()
            elapsed = time.perf_counter() - started
            calls = _recorded_calls()
        attributes = admin.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        runs.append(
            {
                "rep": rep,
                "seconds": elapsed,
                "calls": calls,
                "api_calls": sum(calls.values()),
                "messages_in_queue": int(attributes["ApproximateNumberOfMessages"]),
            }
        )
        admin.delete_queue(QueueUrl=queue_url)
    return {"cold": runs[0], "warm": runs[1:]}


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__)
    parser.add_argument("measure", choices=MEASURES)
    parser.add_argument("--side", choices=sorted(SIDES), required=True)
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    parser.add_argument("--messages", type=int, default=2000, help="throughput: messages")
    parser.add_argument("--batch", type=int, default=10, help="throughput: records per batch")
    parser.add_argument(
        "--floor", action="store_true", help="throughput: also time the two writes alone"
    )
    parser.add_argument("--tasks", type=int, default=500, help="local-burst: tasks")
    parser.add_argument(
        "--warm", action="store_true", help="local-burst: run one task first (pool up)"
    )
    parser.add_argument("--calls", type=int, default=100, help="oncommit: calls per transaction")
    parser.add_argument("--repeats", type=int, default=5, help="oncommit: measured transactions")
    parser.add_argument(
        "--prestart",
        action="store_true",
        help="local-first (ours): start the pool at server start, submit once it is ready",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="local: seconds to wait")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    side = SIDES[args.side]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", side.settings)
    if args.measure == "migrate":
        result = measure_migrate(side, args)
    elif args.measure == "throughput":
        result = measure_throughput(side, args)
    elif args.measure == "local-burst":
        result = measure_local_burst(side, args)
    elif args.measure == "local-first":
        result = measure_local_first(side, args)
    else:
        result = measure_oncommit(side, args)
    result["side"] = side.name
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
