"""``task_logger``: the ``[<record id>]`` prefix while a task runs (SPEC §4.6)."""

from __future__ import annotations

import logging
import threading

import pytest

from lambda_tasks_core import TaskMessage, new_invocation_id
from lambda_tasks_django import executor, task_logger
from lambda_tasks_django.logging import TaskLoggerAdapter

LOGGER = "lambda_tasks.task"


@pytest.fixture
def task_lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_task_logger_is_the_documented_adapter() -> None:
    assert isinstance(task_logger, TaskLoggerAdapter)
    assert task_logger.logger is logging.getLogger(LOGGER)


@pytest.mark.django_db
def test_lines_logged_by_a_running_task_carry_its_record_id(
    task_lines: pytest.LogCaptureFixture,
) -> None:
    outcome = executor.execute(
        TaskMessage(task_name="tests.testapp.tasks.logs", kwargs={"text": "world"}),
        new_invocation_id(),
    )

    prefix = f"[{outcome.record_id}] "
    assert messages(task_lines) == [
        f"{prefix}Running tests.testapp.tasks.logs (attempt 1)",
        f"{prefix}hello world",
    ]
    task_record = next(r for r in task_lines.records if r.getMessage() == f"{prefix}hello world")
    assert task_record.__dict__["task_record_id"] == outcome.record_id  # a field for formatters


@pytest.mark.django_db
def test_no_prefix_outside_a_task_even_after_one_ran(task_lines: pytest.LogCaptureFixture) -> None:
    task_logger.info("before")
    executor.execute(
        TaskMessage(task_name="tests.testapp.tasks.create_group_then_fail", kwargs={"name": "x"}),
        new_invocation_id(),
    )
    task_lines.clear()

    task_logger.info("after %s", "it")

    assert messages(task_lines) == ["after it"]
    assert not hasattr(task_lines.records[0], "task_record_id")


def test_bind_nests_and_restores_the_outer_id(task_lines: pytest.LogCaptureFixture) -> None:
    with task_logger.bind("outer"):
        task_logger.info("a")
        with task_logger.bind("inner"):
            task_logger.info("b")
        task_logger.info("c")
    task_logger.info("d")

    assert messages(task_lines) == ["[outer] a", "[inner] b", "[outer] c", "d"]


def test_bind_restores_after_an_exception(task_lines: pytest.LogCaptureFixture) -> None:
    with pytest.raises(RuntimeError), task_logger.bind("doomed"):
        raise RuntimeError

    task_logger.warning("free")

    assert messages(task_lines) == ["free"]


def test_caller_extra_is_kept(task_lines: pytest.LogCaptureFixture) -> None:
    with task_logger.bind("rid"):
        task_logger.info("x", extra={"user": 5})

    (record,) = task_lines.records
    assert (record.__dict__["user"], record.__dict__["task_record_id"]) == (5, "rid")


def test_threads_running_tasks_at_once_do_not_mix_ids(
    task_lines: pytest.LogCaptureFixture,
) -> None:
    # Given two threads, each inside its own bind, logging in lockstep so that
    # every line of one thread falls between two lines of the other
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def work(record_id: str) -> None:
        try:
            with task_logger.bind(record_id):
                for n in range(20):
                    barrier.wait()
                    task_logger.info("%s line %d", threading.current_thread().name, n)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(rid,), name=rid) for rid in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    # Then each line carries the id bound by the thread that wrote it
    assert errors == []
    lines = messages(task_lines)
    assert len(lines) == 40
    for line in lines:
        bound = line[1 : line.index("]")]
        assert line.endswith(tuple(f"line {n}" for n in range(20)))
        assert line.split()[1] == bound
    # And the main thread, which bound nothing, still logs without a prefix
    task_logger.info("main")
    assert messages(task_lines)[-1] == "main"
