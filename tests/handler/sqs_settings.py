"""Settings of the handler's subprocess tests: SQS mode, the handler app installed.

``LAMBDA_TASKS_TEST_QUEUES`` (JSON: name → URL) gives the queues, and
``LAMBDA_TASKS_TEST_EXTRA_APPS`` (comma-separated) more installed apps,
``LAMBDA_TASKS_TEST_OUTBOX=1`` turns the outbox on. The
database is the test process's (see tests/settings.py).
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

LAMBDA_TASKS_EAGER = False
LAMBDA_TASKS_QUEUES = json.loads(os.environ.get("LAMBDA_TASKS_TEST_QUEUES", "{}"))
LAMBDA_TASKS_OUTBOX = os.environ.get("LAMBDA_TASKS_TEST_OUTBOX") == "1"
INSTALLED_APPS = [
    *INSTALLED_APPS,
    "lambda_tasks_handler",
    *filter(None, os.environ.get("LAMBDA_TASKS_TEST_EXTRA_APPS", "").split(",")),
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"lambda_tasks": {"level": "INFO"}},
}
