"""An installed app that fails to import while LAMBDA_TASKS_TEST_BREAK_APP=1 (cold-start tests)."""

import os

if os.environ.get("LAMBDA_TASKS_TEST_BREAK_APP") == "1":
    raise ImportError("tests.handler.flaky_app is broken on purpose")
