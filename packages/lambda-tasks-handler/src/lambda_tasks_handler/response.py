"""The wire contract of a partial batch response, written once (SPEC §6).

See "Reporting batch item failures" in the AWS Lambda developer guide: the
event source mapping must enable ``ReportBatchItemFailures``, and every
``itemIdentifier`` must be the ``messageId`` of a record of the batch (an
unknown one makes Lambda retry the whole batch).

Importing this module imports nothing but :mod:`typing`.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["BatchItemFailure", "PartialBatchResponse"]


class BatchItemFailure(TypedDict):
    """One record that SQS should offer again: its ``messageId``."""

    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """What :func:`lambda_tasks_handler.handler` returns for an SQS batch."""

    batchItemFailures: list[BatchItemFailure]
