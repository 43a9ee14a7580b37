"""Numeric limits imposed by AWS, with their units in their names.

SQS quotas: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
Lambda quotas: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_BATCH_ENTRIES",
    "MAX_BATCH_SIZE_BYTES",
    "MAX_DELAY_SECONDS",
    "MAX_MESSAGE_SIZE_BYTES",
    "MAX_TIMEOUT_SECONDS",
]

#: SQS DelaySeconds upper bound (15 minutes).
MAX_DELAY_SECONDS: Final = 900
#: Largest SQS message body, and largest total payload of one SendMessageBatch.
MAX_MESSAGE_SIZE_BYTES: Final = 1_048_576
MAX_BATCH_SIZE_BYTES: Final = 1_048_576
#: Entries in one SendMessageBatch / DeleteMessageBatch call.
MAX_BATCH_ENTRIES: Final = 10
#: Longest run of one Lambda invocation (15 minutes), hence of one task.
MAX_TIMEOUT_SECONDS: Final = 900
