"""Settings of the server processes started by the local runner tests (runserver & co).

The test settings in local mode with two workers, the optional app that warms
the pool when ``runserver`` starts, and a few views (``tests.local.urls``).
"""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "lambda_tasks_local"]
ROOT_URLCONF = "tests.local.urls"

LAMBDA_TASKS_EAGER = False
LAMBDA_TASKS_LOCAL_WORKERS = 2
LAMBDA_TASKS_MAX_RETRIES = 2
