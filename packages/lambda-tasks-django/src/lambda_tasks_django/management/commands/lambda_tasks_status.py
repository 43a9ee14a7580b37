from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db.models import Count

from lambda_tasks_django.models import TaskRecord

_STATUSES = list(TaskRecord.TaskStatus.values)


class Command(BaseCommand):
    help = "Print how many task records each task has, per status."

    def handle(self, *args: Any, **options: Any) -> None:
        counts: dict[str, dict[str, int]] = {}
        rows = TaskRecord.objects.values_list("task_name", "status").annotate(n=Count("pk"))
        for task_name, status, n in rows:
            counts.setdefault(task_name, {})[status] = n
        if not counts:
            self.stdout.write("No task records.")
            return
        width = max(len("task"), *(len(name) for name in counts))
        header = f"{'task':<{width}}  " + "  ".join(f"{s:>9}" for s in _STATUSES)
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for name in sorted(counts):
            per_status = counts[name]
            self.stdout.write(
                f"{name:<{width}}  " + "  ".join(f"{per_status.get(s, 0):>9}" for s in _STATUSES)
            )
