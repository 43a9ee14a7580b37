"""The handler package: cheap to import, a retried cold start, an optional Django app.

These run in subprocesses: a fresh interpreter is the only place where an
import can be watched, or a failing ``django.setup()`` tried again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import get_type_hints

import pytest

import lambda_tasks_handler
from lambda_tasks_handler import BatchItemFailure, PartialBatchResponse

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_public_api() -> None:
    assert lambda_tasks_handler.__all__ == [
        "BatchItemFailure",
        "PartialBatchResponse",
        "handler",
        "relay_handler",
    ]
    assert get_type_hints(PartialBatchResponse) == {"batchItemFailures": list[BatchItemFailure]}
    assert get_type_hints(BatchItemFailure) == {"itemIdentifier": str}


def test_importing_the_handler_imports_neither_boto3_nor_django() -> None:
    result = run_python(
        """
        import sys
        from lambda_tasks_handler import handler
        heavy = sorted(
            name for name in sys.modules
            if name.split(".")[0] in {"boto3", "botocore", "django", "pydantic", "tests"}
            or name.startswith("lambda_tasks_django")
        )
        print(heavy)
        """,
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_boto3_is_imported_only_when_a_loader_needs_it() -> None:
    # A cold start without loader variables, and a batch without retries, never import
    # boto3; nor the outbox module without LAMBDA_TASKS_OUTBOX.
    result = run_python(
        """
        import json, sys
        from lambda_tasks_handler import handler
        event = {"Records": [{"messageId": "m1", "body": "not json"}]}
        print(json.dumps(handler(event, None)))
        print(
            "boto3" in sys.modules,
            "tests.testapp.tasks" in sys.modules,
            "lambda_tasks_django.outbox" in sys.modules,
        )
        """,
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    assert result.returncode == 0, result.stderr
    response, imported = result.stdout.strip().splitlines()
    assert json.loads(response) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert imported == "False True False"  # the project loads at the first invocation


def test_failed_django_setup_is_tried_again_at_the_next_invocation() -> None:
    result = run_python(
        """
        import json, os
        from lambda_tasks_handler import handler
        event = {"Records": [{"messageId": "m1", "body": "not json"}]}
        os.environ["LAMBDA_TASKS_TEST_BREAK_APP"] = "1"
        for attempt in (1, 2):
            try:
                handler(event, None)
            except Exception as exc:
                print(attempt, type(exc).__name__, exc)
        os.environ["LAMBDA_TASKS_TEST_BREAK_APP"] = "0"
        print(json.dumps(handler(event, None)))
        from django.apps import apps
        model = apps.get_model("lambda_tasks.TaskRecord")
        print(apps.is_installed("tests.handler.flaky_app"), model)
        """,
        DJANGO_SETTINGS_MODULE="tests.handler.sqs_settings",
        LAMBDA_TASKS_TEST_EXTRA_APPS="tests.handler.flaky_app",
    )
    assert result.returncode == 0, result.stderr
    first, second, response, installed = result.stdout.strip().splitlines()
    assert first == "1 ImportError tests.handler.flaky_app is broken on purpose"
    assert second == "2" + first[1:]  # the same error again, not "populate() isn't reentrant"
    assert json.loads(response) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert installed == "True <class 'lambda_tasks_django.models.TaskRecord'>"


def test_missing_settings_module_is_a_value_error_naming_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lambda_tasks_handler import handler; handler({'Records': []}, None)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "ValueError: DJANGO_SETTINGS_MODULE is not set" in result.stderr


@pytest.mark.django_db
def test_the_optional_app_provides_the_poll_command() -> None:
    result = run_python(
        """
        import django
        django.setup()
        from django.core.management import get_commands
        print(get_commands()["lambda_tasks_poll"])
        """,
        DJANGO_SETTINGS_MODULE="tests.handler.sqs_settings",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lambda_tasks_handler"
