"""A stand-in server for the orphan tests: ``python -m tests.local.parent_process [--stuck]``.

Starts the local pool (two workers), optionally gives one worker a task stuck
in C code, prints one JSON line ``{"pid": ..., "workers": [...]}`` once the
workers are ready (and the stuck task runs), then sleeps until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.local.server_settings")
    import django

    django.setup()

    import lambda_tasks_local
    from tests.testapp.tasks import local_stuck_in_c_long

    assert lambda_tasks_local.start()
    stuck = "--stuck" in sys.argv[1:]
    if stuck:
        local_stuck_in_c_long.execute_on_commit()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = lambda_tasks_local.state()
        if state and len(state.ready_pids) == 2 and (state.running or not stuck):
            print(json.dumps({"pid": os.getpid(), "workers": list(state.pids)}), flush=True)
            break
        time.sleep(0.05)
    else:
        print(json.dumps({"error": "workers did not start"}), flush=True)
        sys.exit(1)
    time.sleep(600)


if __name__ == "__main__":
    main()
