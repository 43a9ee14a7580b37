"""Fuzz ``lambda_tasks_handler.handler`` with many arbitrary SQS events (SPEC §6, §8).

    uv run python -m bench.fuzz_handler [--inputs 10000] [--seed 0]

The events and the check are those of ``tests/handler/test_fuzz.py``
(``tests/handler/fuzzing.py``), on a throwaway SQLite database with the test
settings in noop mode (retries are dropped). Prints the figures: events and
records thrown at the handler, records run and reported, handler exceptions,
unintended executions (a non-task called, a forbidden module imported, more
records than runnable messages) and wrong responses. Exits 1 if any of the
last three is not zero.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_handler", description=__doc__)
    parser.add_argument("--inputs", type=int, default=10_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lambda-tasks-fuzz-") as workdir:
        os.environ["LAMBDA_TASKS_TEST_SQLITE"] = str(Path(workdir) / "fuzz.sqlite3")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections
        from django.test.utils import override_settings

        call_command("migrate", verbosity=0)
        # Persistent connection, as a Lambda function would configure (CONN_MAX_AGE):
        # close_old_connections() then keeps it instead of reconnecting per record.
        connections["default"].settings_dict["CONN_MAX_AGE"] = None
        # Poison records are logged at ERROR by design: thousands of lines, none of interest.
        logging.disable(logging.CRITICAL)
        with override_settings(LAMBDA_TASKS_EAGER=False, LAMBDA_TASKS_NOOP_EXECUTION=True):
            tally, seconds = run(args.inputs, args.seed)
        logging.disable(logging.NOTSET)

    print(
        f"events thrown at the handler: {tally.events} ({tally.records} records) in {seconds:.0f} s"
    )
    print(f"records run: {tally.ran}, reported as batch failures: {tally.reported}")
    print(f"handler exceptions: {tally.handler_exceptions}")
    print(f"unintended executions: {tally.unintended_executions}")
    print(f"wrong responses: {tally.wrong_responses}")
    for example in tally.examples:
        print("  e.g.", example[:2000])
    problems = tally.handler_exceptions + tally.unintended_executions + tally.wrong_responses
    return 1 if problems else 0


def run(inputs: int, seed: int) -> tuple[Any, float]:
    """Throw ``inputs`` events at the handler; Django must be set up and migrated."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    from tests.handler.fuzzing import Tally, check, sqs_events

    tally = Tally()

    @hypothesis_seed(seed)
    @settings(
        max_examples=inputs,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(event=sqs_events())
    def throw(event: dict[str, Any]) -> None:
        check(event, tally)  # counts problems instead of failing, so the run goes on

    started = time.monotonic()
    throw()
    return tally, time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
