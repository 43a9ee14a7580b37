"""Child process of ``test_concurrency``: delivers the same messages as its twin, in lockstep.

``python -m tests.django.concurrency_worker WORKDIR INDEX`` (INDEX 0 or 1), with
``DJANGO_SETTINGS_MODULE`` and the database environment of the parent.

``WORKDIR/rounds.json`` lists rounds ``{"invocation_id", "body", "stale"}``. For
each round both workers meet at a file barrier, then call the executor at the
same moment. With ``stale``, worker 0 first plants a RUNNING record of that
attempt that started long ago (a delivery that died), so both deliveries race
to take it over. Prints one JSON document: what each round gave this worker,
and (after a final barrier) the records of every round.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BARRIER_TIMEOUT_SECONDS = 60.0


def _barrier(workdir: Path, name: str, me: int) -> None:
    """Wait until the other worker reached the same point (sub-millisecond release)."""
    (workdir / f"{name}-{me}").touch()
    other = workdir / f"{name}-{1 - me}"
    deadline = time.monotonic() + BARRIER_TIMEOUT_SECONDS
    while not other.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker {1 - me} never reached {name}")
        time.sleep(0.0002)


def main(argv: list[str]) -> int:
    workdir, me = Path(argv[1]), int(argv[2])

    import django

    django.setup()

    from django.utils import timezone

    from lambda_tasks_core import TaskMessage, record_id
    from lambda_tasks_django.executor import TaskInProgress, execute
    from lambda_tasks_django.models import TaskRecord

    rounds: list[dict[str, Any]] = json.loads((workdir / "rounds.json").read_text())
    TaskRecord.objects.exists()  # connect before the first race
    results: list[dict[str, Any]] = []
    for number, round_ in enumerate(rounds):
        message = TaskMessage.from_json(round_["body"])
        invocation_id = round_["invocation_id"]
        if round_["stale"] and me == 0:
            TaskRecord.objects.create(
                pk=record_id(invocation_id, message.n_retries),
                task_name=message.task_name,
                kwargs=message.kwargs,
                n_retries=message.n_retries,
                status=TaskRecord.TaskStatus.RUNNING,
                start_time=timezone.now() - datetime.timedelta(hours=1),
                invocation_id=invocation_id,
            )
        _barrier(workdir, f"round{number}", me)
        try:
            outcome = execute(message, invocation_id)
        except TaskInProgress:
            results.append({"round": number, "result": "in_progress"})
        else:
            result = "duplicate" if outcome.duplicate else "ran"
            results.append({"round": number, "result": result, "status": outcome.status})

    _barrier(workdir, "done", me)
    records = [
        {
            "id": str(row["id"]),
            "invocation_id": row["invocation_id"],
            "status": row["status"],
            "result": row["result"],
            "traceback": row["traceback"],
        }
        for row in TaskRecord.objects.filter(
            invocation_id__in=[r["invocation_id"] for r in rounds]
        ).values("id", "invocation_id", "status", "result", "traceback")
    ]
    print(json.dumps({"pid": os.getpid(), "results": results, "records": records}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
