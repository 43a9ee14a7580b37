"""Configuration of local mode, without starting any worker."""

from __future__ import annotations

import json
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings as SettingsWrapper

import lambda_tasks_local
from lambda_tasks_django.dispatch import get_transport
from lambda_tasks_local import LocalTransport, get_local_transport
from lambda_tasks_local.apps import serving_runserver
from lambda_tasks_local.pool import Job, LocalPool, describe_exit
from lambda_tasks_local.worker import WorkerTransport
from tests.testapp import tasks


@pytest.fixture
def local_settings(settings: SettingsWrapper) -> SettingsWrapper:
    settings.LAMBDA_TASKS_EAGER = False
    settings.LAMBDA_TASKS_LOCAL_WORKERS = 2
    return settings


def test_local_mode_uses_the_local_transport(local_settings: SettingsWrapper) -> None:
    transport = get_transport()
    assert isinstance(transport, LocalTransport)
    assert transport is get_local_transport()  # one per process
    assert lambda_tasks_local.state() is None  # nothing started by asking


def test_the_package_exports_a_short_public_api() -> None:
    assert "get_local_transport" in lambda_tasks_local.__all__
    assert len(lambda_tasks_local.__all__) <= 10
    for name in lambda_tasks_local.__all__:
        assert hasattr(lambda_tasks_local, name)


def test_without_the_package_local_mode_names_the_install(
    local_settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lambda_tasks_local", None)  # import fails
    with pytest.raises(ImproperlyConfigured, match="pip install lambda-tasks-local"):
        tasks.add.execute_on_commit(a=1)


@pytest.mark.parametrize(
    "values",
    [
        {"LAMBDA_TASKS_LOCAL_WORKERS": -1, "LAMBDA_TASKS_EAGER": False},
        {"LAMBDA_TASKS_LOCAL_WORKERS": 2, "LAMBDA_TASKS_EAGER": True},
        {"LAMBDA_TASKS_LOCAL_WORKERS": 2, "LAMBDA_TASKS_NOOP_EXECUTION": True},
    ],
    ids=["negative", "with-eager", "with-noop"],
)
def test_bad_worker_settings_are_refused_at_enqueue(
    settings: SettingsWrapper, values: dict[str, object]
) -> None:
    for name, value in values.items():
        setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match="LAMBDA_TASKS_LOCAL_WORKERS"):
        tasks.add.execute_on_commit(a=1)
    assert lambda_tasks_local.state() is None


def test_start_does_nothing_outside_local_mode(settings: SettingsWrapper) -> None:
    settings.LAMBDA_TASKS_EAGER = True
    settings.LAMBDA_TASKS_LOCAL_WORKERS = 0
    assert lambda_tasks_local.start() is False
    assert lambda_tasks_local.state() is None


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # the autoreloader's child
        (["manage.py", "runserver"], {}, False),  # the autoreloader itself
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "runserver", "0:8000", "--noreload"], {}, True),
        (["manage.py", "migrate"], {"RUN_MAIN": "true"}, False),
        (["manage.py", "shell"], {}, False),
        (["pytest"], {}, False),
    ],
)
def test_the_app_warms_the_pool_only_in_the_serving_runserver(
    argv: list[str], environ: dict[str, str], expected: bool
) -> None:
    assert serving_runserver(argv, environ) is expected


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        LocalPool(0)


def test_jobs_carry_the_json_message_and_the_invocation_id() -> None:
    invocation = tasks.add.invocation({"a": 1, "b": 2}, 4, None).with_id()
    job = Job.from_invocation(invocation)
    assert job.invocation_id == invocation.invocation_id
    assert json.loads(job.body) == {
        "task_name": "tests.testapp.tasks.add",
        "kwargs": {"a": 1, "b": 2},
        "n_retries": 0,
    }
    assert (job.delay, job.queue, job.n_retries) == (4, "default", 0)


def test_exit_codes_are_described() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-11).startswith("killed by signal SIGSEGV")
    assert "out-of-memory" in describe_exit(-9)
    assert describe_exit(None) == "still running"


def test_inside_a_worker_invocations_go_to_the_parent() -> None:
    assert isinstance(WorkerTransport(), WorkerTransport)
    assert not isinstance(get_local_transport(), WorkerTransport)  # not in a worker here


def test_a_forked_process_does_not_reuse_the_parents_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lambda_tasks_local import runner

    pool = LocalPool(1)  # never started
    monkeypatch.setattr(runner, "_pool", pool)
    runner._forget_pool_after_fork()  # what os.register_at_fork runs in the child
    assert runner.get_pool(create=False) is None
    pool.shutdown()
