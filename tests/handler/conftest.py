"""Fixtures of the handler tests: a stand-in Lambda context, modes, a clean cold start."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from lambda_tasks_handler import _coldstart
from lambda_tasks_handler.environment import clear_cache
from tests.services import MotoServer, SqsQueueFactory


class FakeContext:
    """The only thing these tests mock: the Lambda context object.

    ``remaining_ms`` is a fixed number of milliseconds or a callable giving it.
    """

    function_name = "lambda-tasks-tests"
    memory_limit_in_mb = "512"

    def __init__(self, remaining_ms: int | Callable[[], int] = 900_000) -> None:
        self._remaining = remaining_ms
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining() if callable(self._remaining) else self._remaining


@pytest.fixture
def lambda_context() -> FakeContext:
    """A context with the most time Lambda gives (900 s)."""
    return FakeContext()


@pytest.fixture(autouse=True)
def fresh_cold_start() -> Iterator[None]:
    """Each test starts with a cold start to do and no cached secrets; os.environ restored."""
    saved = dict(os.environ)
    _coldstart.reset()
    clear_cache()
    yield
    _coldstart.reset()
    clear_cache()
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture
def reset_sqs_client() -> Iterator[None]:
    """lambda_tasks_django's SQS client is built again for (and after) the test's endpoint."""
    from lambda_tasks_django import sqs

    sqs.reset_client()
    yield
    sqs.reset_client()


@dataclass(frozen=True)
class SqsMode:
    """The settings of SQS mode, with fresh queues on the moto server."""

    default: str
    other: str
    moto: MotoServer


@pytest.fixture
def sqs_mode(
    aws_env: MotoServer,
    sqs_queue_factory: SqsQueueFactory,
    settings: SettingsWrapper,
    reset_sqs_client: None,
) -> SqsMode:
    """SQS mode (no eager execution); queues 'default' and 'other' with 2 s visibility."""
    mode = SqsMode(
        default=sqs_queue_factory("default", VisibilityTimeout=2),
        other=sqs_queue_factory("other", VisibilityTimeout=2),
        moto=aws_env,
    )
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_QUEUES = {"default": mode.default, "other": mode.other}
    return mode


@pytest.fixture
def noop_mode(settings: SettingsWrapper) -> None:
    """Retries are dropped (with a warning) instead of sent or run."""
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_NOOP_EXECUTION = True
