from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lambda_tasks_django.tasks import cleanup_task_records


class Command(BaseCommand):
    help = "Delete task records older than --retention-days (default 7)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--retention-days", type=int, default=7)

    def handle(self, *args: Any, retention_days: int, **options: Any) -> None:
        deleted = cleanup_task_records(retention_days=retention_days)
        self.stdout.write(f"Deleted {deleted} task record(s) older than {retention_days} day(s).")
