"""Run lambda-tasks in local background worker processes during development (SPEC §7).

Set ``LAMBDA_TASKS_LOCAL_WORKERS = N`` (N > 0): tasks dispatched after commit
run in a pool of N worker processes of the server, with their timeouts, retries
and delays, and without AWS. Optionally add ``"lambda_tasks_local"`` to
``INSTALLED_APPS`` so that ``runserver`` starts the pool at once.
"""

from lambda_tasks_local.pool import HARD_TIMEOUT_GRACE, PoolState, WorkerDied
from lambda_tasks_local.runner import (
    LocalTransport,
    get_local_transport,
    shutdown,
    start,
    state,
)
from lambda_tasks_local.worker import WorkerStopped

__all__ = [
    "HARD_TIMEOUT_GRACE",
    "LocalTransport",
    "PoolState",
    "WorkerDied",
    "WorkerStopped",
    "get_local_transport",
    "shutdown",
    "start",
    "state",
]
