"""``manage.py demo``: enqueue a mix of tasks, watch them run, print their outcomes."""

from __future__ import annotations

import sys
import time
from typing import Any

import django
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from example_app import tasks
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.settings import get_settings

FINISHED = {TaskRecord.TaskStatus.SUCCEEDED, TaskRecord.TaskStatus.FAILED}


class Command(BaseCommand):
    help = "Run a mix of example tasks and print a table of their outcomes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60, help="seconds to wait")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        mode = get_settings().mode.value
        self.stdout.write(f"lambda-tasks demo — mode: {mode}\n")
        with transaction.atomic():
            calls = [
                ("add(a=2, b=3)", tasks.add.execute_on_commit(a=2, b=3)),
                ("divide(a=1, b=0)", tasks.divide.execute_on_commit(a=1, b=0)),
                (
                    "flaky(fail_times=2)",
                    tasks.flaky.execute_on_commit(key=str(time.time_ns()), fail_times=2),
                ),
                ("slow(seconds=1.5)", tasks.slow.execute_on_commit(seconds=1.5)),
                ("maybe_nothing(items=[])", tasks.maybe_nothing.execute_on_commit(items=[])),
                (
                    "maybe_nothing(items=[1, 2])",
                    tasks.maybe_nothing.execute_on_commit(items=[1, 2]),
                ),
                ("add(a=40, b=2)", tasks.add.execute_on_commit(a=40, b=2)),
            ]
        if django.VERSION >= (6, 0):
            # django.tasks enqueues at once (Django's contract), not on commit.
            from example_app.django_tasks import word_count

            result = word_count.enqueue("tasks written for django.tasks run here too")
            calls.append(("word_count (django.tasks)", result.id))
        ids = [invocation_id for _, invocation_id in calls]
        deadline = time.monotonic() + timeout
        while True:
            latest = _latest_attempts(ids)
            done = sum(1 for r in latest.values() if r.status in FINISHED)
            self._progress(done, len(ids))
            if done == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.stdout.write("\n")
        self._table(calls, latest)
        self.stdout.write("\nTask logs: example/lambda-tasks.log")
        if done != len(ids):
            raise CommandError(f"only {done} of {len(ids)} tasks finished within {timeout} s")

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // total
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks finished"
        if sys.stdout.isatty():
            self.stdout.write(f"\r{line}", ending="")
            self.stdout.flush()
        elif done == total:
            self.stdout.write(line)

    def _table(self, calls: list[tuple[str, str]], latest: dict[str, TaskRecord]) -> None:
        rows = [("call", "status", "attempts", "duration", "outcome")]
        for label, invocation_id in calls:
            record = latest.get(invocation_id)
            if record is None:
                rows.append((label, "NOT STARTED", "0", "-", ""))
                continue
            duration = record.duration
            rows.append(
                (
                    label,
                    record.status,
                    str(record.n_retries + 1),
                    f"{duration.total_seconds():.3f} s" if duration is not None else "-",
                    _outcome(record),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for n, row in enumerate(rows):
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            if n == 0:
                self.stdout.write("  ".join("-" * w for w in widths))


def _latest_attempts(ids: list[str]) -> dict[str, TaskRecord]:
    latest: dict[str, TaskRecord] = {}
    for record in TaskRecord.objects.filter(invocation_id__in=ids).order_by("n_retries"):
        assert record.invocation_id is not None
        latest[record.invocation_id] = record
    return latest


def _outcome(record: TaskRecord) -> str:
    if record.traceback:
        last_line = record.traceback.strip().splitlines()[-1]
        prefix = "ignored " if record.status == TaskRecord.TaskStatus.SUCCEEDED else ""
        return (prefix + last_line)[:70]
    return f"result: {record.result!r}"[:70]
