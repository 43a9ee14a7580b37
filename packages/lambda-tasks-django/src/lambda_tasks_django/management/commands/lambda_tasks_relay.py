from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lambda_tasks_django.outbox import DEFAULT_BATCH_SIZE, DEFAULT_MIN_AGE_SECONDS, relay


class Command(BaseCommand):
    help = (
        "Send the invocations left in the outbox (LAMBDA_TASKS_OUTBOX) to SQS, oldest first. "
        "One pass by default; --loop keeps relaying until SIGTERM or SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep relaying")
        parser.add_argument(
            "--interval", type=float, default=10.0, help="seconds between passes (--loop)"
        )
        parser.add_argument(
            "--min-age",
            type=float,
            default=DEFAULT_MIN_AGE_SECONDS,
            help="leave rows younger than this many seconds to their own request",
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(
        self,
        *args: Any,
        loop: bool,
        interval: float,
        min_age: float,
        batch_size: int,
        **options: Any,
    ) -> None:
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, not {batch_size}")
        if min_age < 0 or interval <= 0:
            raise CommandError("--min-age must be at least 0 and --interval above 0")
        if not loop:
            self._pass(min_age, batch_size)
            return
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {signum: signal.signal(signum, stop) for signum in signals}
        try:
            while not stopping:
                self._pass(min_age, batch_size)
                deadline = time.monotonic() + interval
                while not stopping and time.monotonic() < deadline:
                    time.sleep(min(0.2, interval))
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _pass(self, min_age: float, batch_size: int) -> None:
        result = relay(min_age_seconds=min_age, batch_size=batch_size)
        self.stdout.write(f"Outbox relay: {result.sent} sent, {result.failed} failed.")
