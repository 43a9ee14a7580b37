"""Property test: the handler on arbitrary SQS-shaped events (SPEC §6, §8).

For every event shaped like an SQS batch the handler never raises, reports
every record that cannot run (and only real messageIds of the batch), runs
every record that can, and never calls anything but a registered task. The
larger run of the same check is ``uv run python -m bench.fuzz_handler``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.handler.fuzzing import Tally, check, sqs_events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("noop_mode")  # retries are dropped, not sent anywhere
@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=sqs_events())
def test_handler_survives_arbitrary_events(event: dict[str, Any]) -> None:
    tally = Tally()

    check(event, tally)

    assert tally.examples == []
    assert (tally.handler_exceptions, tally.unintended_executions, tally.wrong_responses) == (
        0,
        0,
        0,
    )
