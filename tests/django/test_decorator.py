"""``@lambda_task`` and the decorated object's API (SPEC §2, §3)."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from django.db import transaction
from pytest_django import DjangoCaptureOnCommitCallbacks

from lambda_tasks_core import UnknownTaskError
from lambda_tasks_core.limits import MAX_MESSAGE_SIZE_BYTES
from lambda_tasks_django import LambdaTask, MessageTooLarge, TaskInvocation, lambda_task, registry
from lambda_tasks_django.models import TaskRecord
from tests.testapp import tasks

Status = TaskRecord.TaskStatus


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks decorated inside a test do not outlive it in the global registry."""
    monkeypatch.setattr(registry, "_tasks", dict(registry.registered()))


# --- decoration --------------------------------------------------------------------------------


@pytest.mark.usefixtures("isolated_registry")
def test_bare_decorator_keeps_name_doc_and_wrapped_function() -> None:
    def greet(*, who: str) -> str:
        """Say hello."""
        return f"hello {who}"

    task = lambda_task(greet)

    assert isinstance(task, LambdaTask)
    assert task.__name__ == "greet"
    assert task.__doc__ == "Say hello."
    assert task.__wrapped__ is greet
    assert (
        task.name
        == f"{__name__}.test_bare_decorator_keeps_name_doc_and_wrapped_function.<locals>.greet"
    )
    assert registry.resolve(task.name) is task
    assert task(who="you") == "hello you"


@pytest.mark.usefixtures("isolated_registry")
def test_decorator_with_options_keeps_metadata_and_applies_options() -> None:
    def slow(*, n: int) -> int:
        """Slow work."""
        return n

    task = lambda_task(queue="other", soft_timeout=5, hard_timeout=10, delay=7)(slow)

    assert (task.__name__, task.__doc__, task.__wrapped__) == ("slow", "Slow work.", slow)
    assert task.options.queue == "other"
    assert task.options.delay == 7
    assert task.timeouts() == (5, 10)


def test_zero_parameters_are_allowed() -> None:
    assert tasks.noop() is None


@pytest.mark.usefixtures("isolated_registry")
@pytest.mark.parametrize(
    ("source", "parameter"),
    [
        ("def bad_positional(a: int) -> None: ...", "'a'"),
        ("def bad_unannotated(*, count) -> None: ...", "'count'"),
        ("def bad_underscore(*, _secret: int) -> None: ...", "'_secret'"),
        ("def bad_varkw(**extra: int) -> None: ...", "'extra'"),
        ("def bad_varargs(*items: int) -> None: ...", "'items'"),
    ],
)
def test_bad_parameter_is_refused_naming_task_and_parameter(source: str, parameter: str) -> None:
    namespace: dict[str, Any] = {"__name__": "somewhere"}
    exec(source, namespace)
    func = next(v for k, v in namespace.items() if k.startswith("bad_"))

    with pytest.raises(TypeError) as excinfo:
        lambda_task(func)

    assert f"somewhere.{func.__name__}" in str(excinfo.value)
    assert parameter in str(excinfo.value)
    assert f"somewhere.{func.__name__}" not in registry.registered()


@pytest.mark.usefixtures("isolated_registry")
@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"soft_timeout": 10, "hard_timeout": 10}, ValueError, "soft_timeout"),
        ({"hard_timeout": 901}, ValueError, "hard_timeout"),
        ({"retry_delay": 5}, ValueError, "retry_delay"),
        ({"retry_on": ("nope",)}, TypeError, "retry_on"),
        ({"delay": 901}, ValueError, "delay"),
        ({"quue": "typo"}, TypeError, "quue"),
    ],
)
def test_bad_option_is_refused_naming_task_and_option(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    def job() -> None: ...

    with pytest.raises(error) as excinfo:
        lambda_task(**options)(job)

    assert ".job" in str(excinfo.value)
    assert named in str(excinfo.value)


# --- direct call -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_direct_call_runs_synchronously_without_a_record() -> None:
    assert tasks.add(a=2, b=3) == 5
    assert TaskRecord.objects.count() == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"a": "1"},  # no str → int coercion
        {"a": True},  # bool is not an int
        {"a": 1.0},  # nor is a float
        {},  # a is required
        {"a": 1, "c": 2},  # no extra kwargs
    ],
)
def test_direct_call_validates_strictly(kwargs: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        tasks.add(**kwargs)

    assert "tests.testapp.tasks.add" in str(excinfo.value)


def test_direct_call_refuses_positional_arguments() -> None:
    with pytest.raises(TypeError, match=r"tests\.testapp\.tasks\.add.*keyword"):
        tasks.add(1)  # type: ignore[call-arg]


@pytest.mark.django_db(transaction=True)
def test_direct_call_opens_no_transaction() -> None:
    assert tasks.in_atomic_block() is False


def test_direct_call_enforces_no_timeouts() -> None:
    # Given a task whose soft limit is 0.2 s and hard limit 0.5 s
    # When it is called directly and sleeps past both
    # Then it returns normally: no alarm interrupted it.
    assert tasks.sleepy_soft(seconds=0.55) == "woke"


# --- execute_on_commit -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_execute_on_commit_returns_a_uuid4_invocation_id_that_names_the_record() -> None:
    invocation_id = tasks.add.execute_on_commit(a=1, b=2)

    parsed = uuid.UUID(invocation_id)
    assert parsed.version == 4
    assert str(parsed) == invocation_id
    record = TaskRecord.objects.get(invocation_id=invocation_id)
    assert (record.status, record.result) == (Status.SUCCEEDED, 3)


@pytest.mark.django_db
def test_execute_on_commit_gives_each_call_a_new_invocation_id(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = tasks.add.execute_on_commit(a=1)
        second = tasks.add.execute_on_commit(a=1)

    assert first != second
    assert TaskRecord.objects.filter(invocation_id__in=[first, second]).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("delay", "error"),
    [(-1, ValueError), (901, ValueError), (True, TypeError), (1.5, TypeError), ("3", TypeError)],
)
def test_bad_delay_override_raises_at_call_time_and_dispatches_nothing(
    delay: object,
    error: type[Exception],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(error, match=r"tests\.testapp\.tasks\.add.*_delay"),
    ):
        tasks.add.execute_on_commit(a=1, _delay=delay)  # type: ignore[arg-type]

    assert callbacks == []
    assert TaskRecord.objects.count() == 0


@pytest.mark.django_db
def test_invalid_kwargs_raise_at_enqueue_and_dispatch_nothing(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(pydantic.ValidationError),
    ):
        tasks.add.execute_on_commit(a="1")

    assert callbacks == []
    assert TaskRecord.objects.count() == 0


@pytest.mark.django_db
def test_kwarg_that_cannot_become_json_is_refused_at_enqueue_naming_the_task(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(ValueError, match=r"tests\.testapp\.tasks\.store_payload") as excinfo,
    ):
        tasks.store_payload.execute_on_commit(payload={"thing": object()})

    assert "JSON" in str(excinfo.value)
    assert callbacks == []
    assert TaskRecord.objects.count() == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_float_kwarg_is_refused_instead_of_arriving_as_null(value: float) -> None:
    # (a float parameter: JSON has no NaN/Infinity, the body would say null)
    with pytest.raises(ValueError, match=r"tests\.testapp\.tasks\.sleepy_soft.*JSON"):
        tasks.sleepy_soft.serialize(seconds=value)


@pytest.mark.django_db
def test_message_exactly_at_the_sqs_limit_is_accepted_and_one_byte_more_is_refused(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # Given the room left for the blob once the body and the invocation-id
    # attribute (name + "String" + 36-character UUID) are counted
    attribute_bytes = len("lambda_tasks_invocation_id") + len("String") + 36
    empty = tasks.store_payload.invocation({"payload": {"blob": ""}})
    room = MAX_MESSAGE_SIZE_BYTES - len(empty.body().encode()) - attribute_bytes

    # When the blob fills that room exactly, the invocation is built
    fits = tasks.store_payload.invocation({"payload": {"blob": "x" * room}})
    assert len(fits.body().encode()) + attribute_bytes == MAX_MESSAGE_SIZE_BYTES

    # Then one byte more is refused at enqueue, before anything is scheduled
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(MessageTooLarge, match=r"store_payload.*1048576"),
    ):
        tasks.store_payload.execute_on_commit(payload={"blob": "x" * (room + 1)})
    assert callbacks == []
    assert TaskRecord.objects.count() == 0


# --- serialize / TaskInvocation.from_dict ------------------------------------------------------


def test_serialize_gives_the_documented_json_shape() -> None:
    serialized = tasks.add.serialize(a=1, b=2, _delay=7)

    assert serialized == {
        "message": {
            "task_name": "tests.testapp.tasks.add",
            "kwargs": {"a": 1, "b": 2},
            "n_retries": 0,
        },
        "delay": 7,
        "queue": "default",
    }
    assert json.loads(json.dumps(serialized)) == serialized


def test_serialize_uses_the_task_delay_and_queue_by_default() -> None:
    serialized = tasks.on_other_queue.serialize(n=4)

    assert (serialized["delay"], serialized["queue"]) == (3, "other")


def test_serialize_turns_rich_kwargs_into_json_values() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")

    serialized = tasks.echo_types.serialize(
        when=when, ident=ident, amount=Decimal("1.50"), tags=["a"]
    )

    assert serialized["message"]["kwargs"] == {
        "when": "2024-05-06T07:08:09Z",
        "ident": "12345678-1234-5678-1234-567812345678",
        "amount": "1.50",
        "tags": ["a"],
    }


def test_serialize_validates_like_execute_on_commit() -> None:
    with pytest.raises(pydantic.ValidationError):
        tasks.add.serialize(a="1")
    with pytest.raises(ValueError, match="_delay"):
        tasks.add.serialize(a=1, _delay=1000)


@pytest.mark.django_db(transaction=True)
def test_serialized_invocation_is_enqueued_later_and_runs() -> None:
    # Given an invocation serialized and stored as JSON (deferred enqueue)
    stored = json.dumps(tasks.add.serialize(a=20, b=22))
    assert TaskRecord.objects.count() == 0

    # When it is rebuilt and enqueued
    invocation = TaskInvocation.from_dict(json.loads(stored))
    invocation_id = invocation.execute_on_commit()

    # Then it runs under a fresh invocation id (eager mode in the test settings)
    record = TaskRecord.objects.get()
    assert (record.task_name, record.status, record.result) == (
        "tests.testapp.tasks.add",
        Status.SUCCEEDED,
        42,
    )
    assert record.invocation_id == invocation_id


@pytest.mark.django_db(transaction=True)
def test_serialized_rich_kwargs_arrive_with_their_types() -> None:
    stored = json.dumps(
        tasks.describe_types.serialize(
            when=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
            ident=uuid.uuid4(),
            amount=Decimal("2.5"),
            colour=tasks.Colour.BLUE,
        )
    )

    TaskInvocation.from_dict(json.loads(stored)).execute_on_commit()

    assert TaskRecord.objects.get().result == {
        "when": "datetime",
        "ident": "UUID",
        "amount": "Decimal",
        "colour": "Colour",
    }


def _serialized(**message: Any) -> dict[str, Any]:
    body = {"task_name": "tests.testapp.tasks.add", "kwargs": {"a": 1}, "n_retries": 0}
    return {"message": {**body, **message}, "delay": 0, "queue": "default"}


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        "not a dict",
        {"message": {}, "delay": 0},
        {"message": "nope", "delay": 0, "queue": "default"},
        _serialized(extra_key=1),
        _serialized(n_retries=-1),
        _serialized(kwargs={"a": "1"}),
        _serialized(kwargs={"a": 1, "zzz": 2}),
        {**_serialized(), "delay": 901},
        {**_serialized(), "delay": "5"},
    ],
)
def test_from_dict_of_garbage_raises_a_clear_error(garbage: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        TaskInvocation.from_dict(garbage)


@pytest.mark.parametrize("name", ["os.system", "tests.testapp.tasks.plain_function", "nope"])
def test_from_dict_of_an_unknown_task_raises_unknown_task_error(name: str) -> None:
    with pytest.raises(UnknownTaskError, match="not a registered task"):
        TaskInvocation.from_dict(_serialized(task_name=name, kwargs={}))


@pytest.mark.django_db
def test_from_dict_round_trips_the_invocation() -> None:
    original = tasks.on_other_queue.invocation({"n": 5}, delay=9)

    rebuilt = TaskInvocation.from_dict(original.serialize())

    assert rebuilt == original
    assert rebuilt.invocation_id is None


@pytest.mark.django_db(transaction=True)
def test_execute_on_commit_inside_a_transaction_returns_the_id_before_running() -> None:
    with transaction.atomic():
        invocation_id = tasks.add.execute_on_commit(a=1)
        assert not TaskRecord.objects.filter(invocation_id=invocation_id).exists()

    assert TaskRecord.objects.get(invocation_id=invocation_id).status == Status.SUCCEEDED
