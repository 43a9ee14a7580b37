"""``manage.py lambda_tasks_poll``: the SQS poller of ``python -m lambda_tasks_handler.poll``."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lambda_tasks_handler.poll import add_arguments, poller_from_options


class Command(BaseCommand):
    help = (
        "Run lambda-tasks from an SQS queue without AWS Lambda: long-poll the queue, run "
        "each batch through lambda_tasks_handler.handler, delete what was done. Stops after "
        "the current batch on SIGTERM or SIGINT; a second signal interrupts the batch (exit "
        "status 128 + the signal number)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(
        self,
        *args: Any,
        queue: str,
        queue_url: str | None,
        wait_time_seconds: int,
        batch_size: int,
        visibility_timeout: int | None,
        **options: Any,
    ) -> None:
        try:
            poller = poller_from_options(
                queue=queue,
                queue_url=queue_url,
                wait_time_seconds=wait_time_seconds,
                batch_size=batch_size,
                visibility_timeout=visibility_timeout,
            )
        except Exception as exc:
            raise CommandError(str(exc)) from exc
        status = poller.run()
        if status:
            sys.exit(status)
