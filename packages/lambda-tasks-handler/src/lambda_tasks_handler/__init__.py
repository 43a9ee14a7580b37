"""AWS Lambda entry point and SQS poller for lambda-tasks.

``lambda_tasks_handler.handler`` is the function to name in the Lambda
configuration (zip or container image). Importing this package is cheap: it
imports neither boto3 nor Django nor your project; the first invocation runs
the cold start (environment loaders, then ``django.setup()``).

``python -m lambda_tasks_handler.poll`` drains a queue without Lambda; add
``"lambda_tasks_handler"`` to ``INSTALLED_APPS`` to also get it as the
``lambda_tasks_poll`` management command.
"""

from __future__ import annotations

from typing import Any

from lambda_tasks_handler.response import BatchItemFailure, PartialBatchResponse

__all__ = ["BatchItemFailure", "PartialBatchResponse", "handler", "relay_handler"]


def handler(event: Any, context: Any) -> PartialBatchResponse:
    """Run the task messages of an SQS event-source batch.

    Returns ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``
    naming the records that could not be run (malformed, unknown task,
    invalid kwargs, configuration error, attempt still running elsewhere, no
    time left, or a retry that could not be sent) so that SQS offers them
    again. A task that ran and failed is recorded in ``TaskRecord`` and not
    reported.

    Raises only for an event that is not an SQS batch (no ``Records`` list)
    and when the cold start fails (it is tried again on the next invocation).
    """
    # Imported here, not at module level: importing the package stays cheap.
    from lambda_tasks_handler import _coldstart

    _coldstart.cold_start(context)

    from lambda_tasks_handler import _batch

    return _batch.process_batch(event, context)


def relay_handler(event: Any, context: Any) -> dict[str, int]:
    """Entry point for a scheduled Lambda that relays the outbox (``LAMBDA_TASKS_OUTBOX``).

    Point an EventBridge schedule (e.g. every minute) at
    ``lambda_tasks_handler.relay_handler``; the event is ignored. Sends what
    the outbox holds, oldest first, and returns ``{"sent": n, "failed": m}``.
    Failed rows stay for the next run.
    """
    from lambda_tasks_handler import _coldstart

    _coldstart.cold_start(context)

    from lambda_tasks_django.outbox import relay

    result = relay()
    return {"sent": result.sent, "failed": result.failed}
