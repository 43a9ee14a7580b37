"""The wire message (SPEC §3): reference-shaped JSON body, strict decoding, ids."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE, TaskMessage, new_invocation_id, record_id

#: JSON values as ``json.loads`` produces them (no NaN/Infinity: they are not JSON).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
json_kwargs = st.dictionaries(st.text(), json_values, max_size=6)


def body(**fields: Any) -> str:
    base: dict[str, Any] = {"task_name": "app.tasks.send_email", "kwargs": {}, "n_retries": 0}
    base.update(fields)
    return json.dumps(base)


# --- encoding -------------------------------------------------------------------------


def test_body_has_exactly_the_reference_keys() -> None:
    message = TaskMessage(task_name="app.tasks.send_email", kwargs={"user_id": 7}, n_retries=2)

    decoded = json.loads(message.to_json())

    assert decoded == {
        "task_name": "app.tasks.send_email",
        "kwargs": {"user_id": 7},
        "n_retries": 2,
    }
    assert set(decoded) == {"task_name", "kwargs", "n_retries"}


def test_defaults_are_written_out() -> None:
    # The reference always sends all three keys; so must we, even for defaults.
    decoded = json.loads(TaskMessage(task_name="app.tasks.ping").to_json())

    assert decoded == {"task_name": "app.tasks.ping", "kwargs": {}, "n_retries": 0}


def test_round_trip() -> None:
    message = TaskMessage(
        task_name="app.tasks.f", kwargs={"a": [1, 2.5, None], "b": {"c": "é"}}, n_retries=3
    )

    assert TaskMessage.from_json(message.to_json()) == message


def test_decodes_a_reference_body_and_bytes() -> None:
    raw = '{"task_name": "app.tasks.f", "kwargs": {"x": 1}, "n_retries": 0}'

    for encoded in (raw, raw.encode()):
        message = TaskMessage.from_json(encoded)
        assert message.task_name == "app.tasks.f"
        assert message.kwargs == {"x": 1}
        assert message.n_retries == 0


@settings(deadline=None)  # timing varies on loaded CI machines
@given(kwargs=json_kwargs, n_retries=st.integers(min_value=0, max_value=10_000))
def test_any_json_kwargs_round_trip(kwargs: dict[str, Any], n_retries: int) -> None:
    message = TaskMessage(task_name="app.tasks.f", kwargs=kwargs, n_retries=n_retries)
    encoded = message.to_json()

    assert json.loads(encoded) == {
        "task_name": "app.tasks.f",
        "kwargs": kwargs,
        "n_retries": n_retries,
    }
    decoded = TaskMessage.from_json(encoded)
    assert decoded.kwargs == kwargs
    assert decoded.n_retries == n_retries
    # A body written by another producer (json.dumps) decodes the same way.
    assert TaskMessage.from_json(json.dumps(json.loads(encoded))) == decoded


# --- strict decoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{"eta": "2024-01-01T00:00:00Z"}, {"priority": 1}, {"invocation_id": "x"}],
)
def test_extra_keys_are_rejected(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        TaskMessage.from_json(body(**extra))

    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_extra_keyword_is_rejected_in_python_too() -> None:
    with pytest.raises(ValidationError):
        TaskMessage(task_name="f", kwargs={}, n_retries=0, eta=5)  # type: ignore[call-arg]


@pytest.mark.parametrize("n_retries", [-1, True, False, "1", 1.0, 1.5, None, [1]])
def test_n_retries_must_be_a_non_negative_int(n_retries: object) -> None:
    with pytest.raises(ValidationError):
        TaskMessage.from_json(body(n_retries=n_retries))
    with pytest.raises(ValidationError):
        TaskMessage(task_name="f", n_retries=n_retries)  # type: ignore[arg-type]


@pytest.mark.parametrize("task_name", ["", None, 5, ["f"]])
def test_task_name_must_be_a_non_empty_string(task_name: object) -> None:
    with pytest.raises(ValidationError):
        TaskMessage.from_json(body(task_name=task_name))


def test_task_name_is_required() -> None:
    with pytest.raises(ValidationError):
        TaskMessage.from_json('{"kwargs": {}, "n_retries": 0}')


@pytest.mark.parametrize("kwargs", [[], [["a", 1]], "a=1", None, 1])
def test_kwargs_must_be_an_object(kwargs: object) -> None:
    with pytest.raises(ValidationError):
        TaskMessage.from_json(body(kwargs=kwargs))


@pytest.mark.parametrize("raw", ["", "not json", "[]", '"x"', "{", '{"task_name": "f"'])
def test_malformed_bodies_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError):
        TaskMessage.from_json(raw)


# --- retries --------------------------------------------------------------------------


def test_next_attempt_increments_n_retries_and_keeps_the_rest() -> None:
    first = TaskMessage(task_name="app.tasks.f", kwargs={"a": 1})

    second = first.next_attempt()
    third = second.next_attempt()

    assert (first.n_retries, second.n_retries, third.n_retries) == (0, 1, 2)
    assert third.task_name == "app.tasks.f"
    assert third.kwargs == {"a": 1}
    assert json.loads(third.to_json()) == {
        "task_name": "app.tasks.f",
        "kwargs": {"a": 1},
        "n_retries": 2,
    }


def test_message_is_immutable() -> None:
    message = TaskMessage(task_name="f")

    with pytest.raises(ValidationError):
        message.n_retries = 5  # type: ignore[misc]
    assert message.n_retries == 0


# --- invocation and record ids ----------------------------------------------------------


def test_invocation_id_attribute_name() -> None:
    assert INVOCATION_ID_ATTRIBUTE == "lambda_tasks_invocation_id"


def test_new_invocation_id_is_a_canonical_uuid4_string() -> None:
    ids = {new_invocation_id() for _ in range(50)}

    assert len(ids) == 50
    for value in ids:
        assert isinstance(value, str)
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert str(parsed) == value


def test_record_id_formula() -> None:
    invocation_id = "2f1c4c0e-7d0a-4b53-9a3e-0c5e8d3b9f11"

    assert record_id(invocation_id, 0) == uuid.uuid5(
        uuid.NAMESPACE_URL, f"lambda-tasks:{invocation_id}:0"
    )
    assert record_id(invocation_id, 3) == uuid.uuid5(
        uuid.NAMESPACE_URL, f"lambda-tasks:{invocation_id}:3"
    )
    # Pinned value: records written by one version must be found by the next.
    assert record_id(invocation_id, 0) == uuid.UUID("c42f4df4-11e4-5662-a201-0c719dac05fe")


@settings(deadline=None)  # timing varies on loaded CI machines
@given(
    invocation_id=st.text(st.characters(exclude_categories=["Cs"]), max_size=100),
    n_retries=st.integers(0, 10**6),
)
def test_record_id_is_uuid5_of_the_formula_for_any_id(invocation_id: str, n_retries: int) -> None:
    # record_id computes uuid5 itself (hot path): it must stay the same function.
    assert record_id(invocation_id, n_retries) == uuid.uuid5(
        uuid.NAMESPACE_URL, f"lambda-tasks:{invocation_id}:{n_retries}"
    )


@settings(deadline=None)  # timing varies on loaded CI machines
@given(invocation_id=st.uuids(version=4).map(str), n_retries=st.integers(0, 5000))
def test_record_id_is_stable_and_distinct_per_attempt(invocation_id: str, n_retries: int) -> None:
    this = record_id(invocation_id, n_retries)

    assert isinstance(this, uuid.UUID)
    assert this.version == 5
    assert this == record_id(invocation_id, n_retries)
    assert this != record_id(invocation_id, n_retries + 1)
    assert this != record_id(new_invocation_id(), n_retries)


def test_record_id_accepts_an_sqs_message_id() -> None:
    # Messages from the reference carry no invocation id: their SQS messageId is used.
    message_id = "059f36b4-87a3-44ab-83d2-661975830a7d"

    assert record_id(message_id, 1) == uuid.uuid5(
        uuid.NAMESPACE_URL, "lambda-tasks:059f36b4-87a3-44ab-83d2-661975830a7d:1"
    )


def test_args_of_django_tasks_messages_round_trip_and_are_absent_otherwise() -> None:
    plain = TaskMessage(task_name="m.f", kwargs={"a": 1})
    assert "args" not in json.loads(plain.to_json())
    assert "args" not in plain.to_dict()
    with_args = TaskMessage(task_name="m.f", kwargs={}, args=[1, "two"])
    body = with_args.to_json()
    assert json.loads(body)["args"] == [1, "two"]
    assert TaskMessage.from_json(body) == with_args
    assert with_args.next_attempt().args == [1, "two"]
