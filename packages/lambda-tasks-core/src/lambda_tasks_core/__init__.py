"""Framework-free core of lambda-tasks.

The wire message, task options and their validation, SIGALRM time limits,
the retry policy and the exceptions. Importing it never imports Django or boto3.
"""

from lambda_tasks_core.exceptions import (
    HardTimeLimitExceeded,
    LambdaTasksError,
    MaxRetriesExceededError,
    SingletonLocked,
    SoftTimeLimitExceeded,
    TaskDefinitionError,
    UnknownTaskError,
)
from lambda_tasks_core.message import (
    INVOCATION_ID_ATTRIBUTE,
    TaskMessage,
    new_invocation_id,
    record_id,
)
from lambda_tasks_core.options import TaskOptions, resolve_timeouts
from lambda_tasks_core.retry import retry_delay_seconds, should_retry
from lambda_tasks_core.signature import TaskSignature
from lambda_tasks_core.timeouts import time_limits

__all__ = [
    "INVOCATION_ID_ATTRIBUTE",
    "HardTimeLimitExceeded",
    "LambdaTasksError",
    "MaxRetriesExceededError",
    "SingletonLocked",
    "SoftTimeLimitExceeded",
    "TaskDefinitionError",
    "TaskMessage",
    "TaskOptions",
    "TaskSignature",
    "UnknownTaskError",
    "new_invocation_id",
    "record_id",
    "resolve_timeouts",
    "retry_delay_seconds",
    "should_retry",
    "time_limits",
]
