"""Django background tasks that run on AWS Lambda through SQS.

Add ``"lambda_tasks_django"`` to ``INSTALLED_APPS`` and decorate functions in
your apps' ``tasks`` modules with :func:`lambda_task`.
"""

from lambda_tasks_core import (
    HardTimeLimitExceeded,
    LambdaTasksError,
    MaxRetriesExceededError,
    SingletonLocked,
    SoftTimeLimitExceeded,
)
from lambda_tasks_django.invocation import MessageTooLarge, TaskInvocation
from lambda_tasks_django.logging import task_logger
from lambda_tasks_django.task import LambdaTask, lambda_task

__all__ = [
    "HardTimeLimitExceeded",
    "LambdaTask",
    "LambdaTasksError",
    "MaxRetriesExceededError",
    "MessageTooLarge",
    "SingletonLocked",
    "SoftTimeLimitExceeded",
    "TaskInvocation",
    "lambda_task",
    "task_logger",
]
