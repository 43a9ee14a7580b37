"""Package surface: public names, exception hierarchy, import isolation (SPEC §0, §1)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import lambda_tasks_core
from lambda_tasks_core import (
    HardTimeLimitExceeded,
    LambdaTasksError,
    MaxRetriesExceededError,
    SingletonLocked,
    SoftTimeLimitExceeded,
    TaskDefinitionError,
    UnknownTaskError,
)
from lambda_tasks_core.limits import (
    MAX_BATCH_ENTRIES,
    MAX_BATCH_SIZE_BYTES,
    MAX_DELAY_SECONDS,
    MAX_MESSAGE_SIZE_BYTES,
    MAX_TIMEOUT_SECONDS,
)


def test_public_names_of_spec_section_0() -> None:
    for name in (
        "SoftTimeLimitExceeded",
        "HardTimeLimitExceeded",
        "MaxRetriesExceededError",
        "TaskMessage",
        "LambdaTasksError",
        "SingletonLocked",
    ):
        assert name in lambda_tasks_core.__all__
        assert getattr(lambda_tasks_core, name).__name__ == name


def test_all_lists_only_existing_names() -> None:
    for name in lambda_tasks_core.__all__:
        assert hasattr(lambda_tasks_core, name), name


def test_import_does_not_load_django_or_boto3() -> None:
    script = textwrap.dedent(
        """
        import sys
        import lambda_tasks_core
        from lambda_tasks_core import (
            TaskMessage, TaskOptions, TaskSignature, time_limits, retry_delay_seconds,
        )

        def f(*, a: int) -> None: ...

        TaskSignature(f, "m.f").to_json_compatible({"a": 1})
        TaskOptions.build("m.f", retry_on=ValueError, retry_delay=5)
        TaskMessage(task_name="m.f").to_json()
        loaded = sorted(
            name for name in ("django", "boto3", "botocore", "awslambdaric", "redis")
            if name in sys.modules
        )
        print("loaded:", loaded)
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "loaded: []", result.stdout + result.stderr


# --- exception hierarchy ------------------------------------------------------------------------


def swallow_exceptions(error: BaseException) -> Exception:
    """Task code that catches everything it can with ``except Exception``."""
    try:
        raise error
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        TaskDefinitionError,
        UnknownTaskError,
        SoftTimeLimitExceeded,
        MaxRetriesExceededError,
        SingletonLocked,
    ],
)
def test_errors_derive_from_the_root(error: type[Exception]) -> None:
    assert issubclass(error, LambdaTasksError)
    assert issubclass(error, Exception)


def test_root_is_an_exception() -> None:
    assert issubclass(LambdaTasksError, Exception)


def test_hard_limit_escapes_except_exception() -> None:
    assert issubclass(HardTimeLimitExceeded, BaseException)
    assert not issubclass(HardTimeLimitExceeded, Exception)

    with pytest.raises(HardTimeLimitExceeded):
        swallow_exceptions(HardTimeLimitExceeded("hard time limit of 1 s exceeded"))


def test_soft_limit_is_caught_by_except_exception() -> None:
    error = SoftTimeLimitExceeded("soft")

    assert swallow_exceptions(error) is error


def test_task_definition_error_is_a_type_error() -> None:
    assert issubclass(TaskDefinitionError, TypeError)
    with pytest.raises(TypeError):
        raise TaskDefinitionError("task t: parameter 'a' needs a type annotation")


def test_unknown_task_error_is_a_lookup_error() -> None:
    assert issubclass(UnknownTaskError, LookupError)


def test_aws_limits() -> None:
    assert MAX_DELAY_SECONDS == 900
    assert MAX_TIMEOUT_SECONDS == 900
    assert MAX_MESSAGE_SIZE_BYTES == 1024 * 1024
    assert MAX_BATCH_SIZE_BYTES == 1024 * 1024
    assert MAX_BATCH_ENTRIES == 10
