"""Task signatures: decoration-time checks and strict kwargs validation (SPEC §2, §3).

This module uses postponed annotations on purpose: every annotation below is a
string that TaskSignature must resolve.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lambda_tasks_core import TaskDefinitionError, TaskSignature


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Address(BaseModel):
    street: str
    number: int


class NotSerialisable:
    """A plain class: pydantic has no schema for it."""


def signature(func: Callable[..., Any]) -> TaskSignature:
    return TaskSignature(func, f"app.tasks.{func.__name__}")


def json_round_trip(sig: TaskSignature, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What happens to kwargs between enqueue and execution."""
    wire = json.loads(json.dumps(sig.to_json_compatible(kwargs)))
    return sig.validate_json(wire)


# --- decoration-time checks ---------------------------------------------------------------


def positional_only(a: int, /) -> None: ...


def positional_or_keyword(a: int) -> None: ...


def mixed(a: int, *, b: int) -> None: ...


def var_positional(*args: int) -> None: ...


def var_keyword(**kwargs: int) -> None: ...


def keyword_then_var_keyword(*, a: int, **extra: int) -> None: ...


def underscore(*, _delay: int) -> None: ...


def dunder(*, __private: int) -> None: ...


def unannotated(*, a: int, b) -> None:  # type: ignore[no-untyped-def]
    ...


@pytest.mark.parametrize(
    ("func", "parameter"),
    [
        (positional_only, "a"),
        (positional_or_keyword, "a"),
        (mixed, "a"),
        (var_positional, "args"),
        (var_keyword, "kwargs"),
        (keyword_then_var_keyword, "extra"),
        (underscore, "_delay"),
        (dunder, "__private"),
        (unannotated, "b"),
    ],
)
def test_unacceptable_parameters_are_rejected(func: Callable[..., Any], parameter: str) -> None:
    with pytest.raises(TaskDefinitionError) as info:
        TaskSignature(func, "app.tasks.bad")

    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert "app.tasks.bad" in message
    assert repr(parameter) in message


def test_unresolvable_annotation_is_rejected() -> None:
    def task(*, a: DoesNotExist) -> None:  # type: ignore[name-defined]  # noqa: F821
        ...

    with pytest.raises(TaskDefinitionError, match=r"app\.tasks\.task"):
        signature(task)


def test_unserialisable_annotation_is_rejected_at_decoration() -> None:
    def task(*, thing: NotSerialisable) -> None: ...

    with pytest.raises(TaskDefinitionError) as info:
        signature(task)

    assert "app.tasks.task" in str(info.value)
    assert "NotSerialisable" in str(info.value)


def test_zero_parameters_are_fine() -> None:
    def ping() -> str:
        return "pong"

    sig = signature(ping)

    assert sig.parameters == ()
    assert sig.validate_python({}) == {}
    assert sig.to_json_compatible({}) == {}
    assert sig.validate_json({}) == {}
    with pytest.raises(ValidationError):
        sig.validate_python({"unexpected": 1})
    with pytest.raises(ValidationError):
        sig.validate_json({"unexpected": 1})


def test_parameters_in_declaration_order() -> None:
    def task(*, zeta: int, alpha: str = "a", mid: float) -> None: ...

    assert signature(task).parameters == ("zeta", "alpha", "mid")


def test_string_annotations_are_resolved() -> None:
    def task(*, count: int, when: datetime.datetime) -> None: ...

    # Postponed evaluation: the annotations are strings here...
    assert task.__annotations__["count"] == "int"
    sig = signature(task)
    # ...and the resolved types are what is enforced.
    when = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)
    assert sig.validate_python({"count": 3, "when": when}) == {"count": 3, "when": when}
    with pytest.raises(ValidationError):
        sig.validate_python({"count": "3", "when": when})
    assert sig.validate_json({"count": 3, "when": "2024-05-01T12:00:00Z"})["when"] == when


def test_return_annotation_is_not_a_parameter() -> None:
    def task(*, a: int) -> dict[str, int]:
        return {"a": a}

    assert signature(task).parameters == ("a",)


# --- strict Python-mode validation (enqueue) -----------------------------------------------------


def typed(*, n: int, s: str, f: float, b: bool, items: list[int]) -> None: ...


VALID = {"n": 1, "s": "x", "f": 1.5, "b": False, "items": [1, 2]}


def test_valid_kwargs_pass_unchanged() -> None:
    assert signature(typed).validate_python(VALID) == VALID


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", "1"),
        ("n", True),
        ("n", False),
        ("n", 1.0),
        ("n", None),
        ("s", 1),
        ("s", b"x"),
        ("s", None),
        ("f", "1.5"),
        ("b", 1),
        ("b", "true"),
        ("items", ["1"]),
        ("items", [True]),
        ("items", (1, 2)),
        ("items", "12"),
    ],
)
def test_no_coercion_at_enqueue(name: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        signature(typed).validate_python({**VALID, name: value})

    assert info.value.errors()[0]["loc"][0] == name


def test_missing_kwargs_are_rejected() -> None:
    kwargs = {k: v for k, v in VALID.items() if k != "s"}

    with pytest.raises(ValidationError) as info:
        signature(typed).validate_python(kwargs)

    assert info.value.errors()[0]["type"] == "missing"


def test_extra_kwargs_are_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        signature(typed).validate_python({**VALID, "surprise": 1})

    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_to_json_compatible_validates_too() -> None:
    with pytest.raises(ValidationError):
        signature(typed).to_json_compatible({**VALID, "n": "1"})


def test_defaults_may_be_omitted() -> None:
    def task(*, user_id: int, template: str = "welcome", cc: list[str] | None = None) -> None: ...

    sig = signature(task)

    assert sig.validate_python({"user_id": 1}) == {"user_id": 1}
    assert sig.validate_json({"user_id": 1}) == {"user_id": 1}
    assert sig.validate_python({"user_id": 1, "template": "bye"}) == {
        "user_id": 1,
        "template": "bye",
    }
    # A default does not relax the type of an explicit value.
    with pytest.raises(ValidationError):
        sig.validate_python({"user_id": 1, "template": 2})
    with pytest.raises(ValidationError):
        sig.validate_python({"template": "bye"})


# --- JSON-mode validation (execution) -------------------------------------------------------------


def rich(
    *,
    when: datetime.datetime,
    day: datetime.date,
    ident: uuid.UUID,
    amount: decimal.Decimal,
    colour: Colour,
    size: Size,
    address: Address,
    numbers: list[int],
    maybe: int | None,
    pair: tuple[int, str],
) -> None: ...


RICH = {
    "when": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.UTC),
    "day": datetime.date(2024, 2, 29),
    "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "amount": decimal.Decimal("12.340"),
    "colour": Colour.BLUE,
    "size": Size.LARGE,
    "address": Address(street="Main St", number=5),
    "numbers": [1, -2, 3],
    "maybe": None,
    "pair": (1, "a"),
}


def test_json_form_is_plain_json() -> None:
    wire = signature(rich).to_json_compatible(RICH)

    assert wire == {
        "when": "2024-02-29T23:59:58.123456Z",
        "day": "2024-02-29",
        "ident": "12345678-1234-5678-1234-567812345678",
        "amount": "12.340",
        "colour": "blue",
        "size": 2,
        "address": {"street": "Main St", "number": 5},
        "numbers": [1, -2, 3],
        "maybe": None,
        "pair": [1, "a"],
    }
    assert json.loads(json.dumps(wire)) == wire


def test_rich_types_round_trip_through_json() -> None:
    back = json_round_trip(signature(rich), RICH)

    assert back == RICH
    assert type(back["when"]) is datetime.datetime
    assert back["when"].utcoffset() == datetime.timedelta(0)
    assert type(back["ident"]) is uuid.UUID
    assert type(back["amount"]) is decimal.Decimal
    assert back["colour"] is Colour.BLUE
    assert back["size"] is Size.LARGE
    assert type(back["address"]) is Address
    assert type(back["pair"]) is tuple


def test_aware_datetime_keeps_its_offset() -> None:
    def task(*, when: datetime.datetime) -> None: ...

    tz = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    when = datetime.datetime(2024, 1, 1, 8, 0, tzinfo=tz)

    back = json_round_trip(signature(task), {"when": when})["when"]

    assert back == when
    assert back.utcoffset() == datetime.timedelta(hours=5, minutes=30)


def test_optional_value_round_trips() -> None:
    def task(*, maybe: int | None) -> None: ...

    sig = signature(task)

    assert json_round_trip(sig, {"maybe": 4}) == {"maybe": 4}
    assert json_round_trip(sig, {"maybe": None}) == {"maybe": None}
    with pytest.raises(ValidationError):
        sig.validate_python({})  # Optional is not the same as having a default
    with pytest.raises(ValidationError):
        sig.validate_python({"maybe": "4"})


def test_python_mode_does_not_parse_strings() -> None:
    # At enqueue an ISO string is not a datetime, nor a string a UUID or an enum...
    sig = signature(rich)

    for name, value in [
        ("when", "2024-02-29T23:59:58Z"),
        ("ident", "12345678-1234-5678-1234-567812345678"),
        ("colour", "blue"),
        ("size", 2),
        ("amount", 1.5),
    ]:
        with pytest.raises(ValidationError):
            sig.validate_python({**RICH, name: value})


def test_json_mode_parses_json_forms_but_does_not_coerce() -> None:
    def task(*, n: int, s: str, when: datetime.datetime) -> None: ...

    sig = signature(task)
    good = {"n": 1, "s": "x", "when": "2024-01-01T00:00:00Z"}

    assert sig.validate_json(good)["when"] == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    for name, value in [("n", "1"), ("n", True), ("n", 1.5), ("s", 1), ("when", "yesterday")]:
        with pytest.raises(ValidationError):
            sig.validate_json({**good, name: value})
    with pytest.raises(ValidationError):
        sig.validate_json({**good, "extra": 1})
    with pytest.raises(ValidationError):
        sig.validate_json({"n": 1, "s": "x"})


def test_json_mode_validates_nested_models() -> None:
    def task(*, address: Address) -> None: ...

    sig = signature(task)

    assert sig.validate_json({"address": {"street": "a", "number": 1}}) == {
        "address": Address(street="a", number=1)
    }
    with pytest.raises(ValidationError):
        sig.validate_json({"address": {"street": "a"}})


def test_unknown_enum_value_is_rejected_at_execution() -> None:
    def task(*, colour: Colour) -> None: ...

    with pytest.raises(ValidationError):
        signature(task).validate_json({"colour": "green"})


# --- property -----------------------------------------------------------------------------


def abc(*, a: int, b: str, c: list[float]) -> None: ...


ABC = signature(abc)


@settings(deadline=None)  # timing varies on loaded CI machines
@given(
    a=st.integers(),
    b=st.text(),
    c=st.lists(st.floats(allow_nan=False, allow_infinity=False)),
)
def test_any_valid_values_round_trip_unchanged(a: int, b: str, c: list[float]) -> None:
    kwargs = {"a": a, "b": b, "c": c}

    assert ABC.validate_python(kwargs) == kwargs
    back = json_round_trip(ABC, kwargs)

    assert back == kwargs
    assert type(back["a"]) is int
    assert all(type(x) is float for x in back["c"])


@dataclasses.dataclass
class Point:
    x: int
    y: int


def nested(*, address: Address, points: list[Point]) -> None: ...


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": {"street": "a", "number": "5"}, "points": []},
        {"address": {"street": "a", "number": True}, "points": []},
        {"address": {"street": 5, "number": 5}, "points": []},
        {"address": {"street": "a", "number": 5}, "points": [{"x": "1", "y": 2}]},
        {"address": {"street": "a", "number": 5}, "points": [{"x": 1.0, "y": 2}]},
    ],
)
def test_strictness_reaches_into_models_and_dataclasses(kwargs: dict[str, Any]) -> None:
    # A pydantic model carries its own (lax) config: strict mode must still apply
    # to its fields, at enqueue and at execution; likewise for dataclasses.
    sig = signature(nested)

    with pytest.raises(ValidationError):
        sig.validate_python(kwargs)
    with pytest.raises(ValidationError):
        sig.validate_json(kwargs)


def test_models_and_dataclasses_round_trip() -> None:
    sig = signature(nested)
    kwargs = {"address": Address(street="a", number=5), "points": [Point(1, 2), Point(3, 4)]}

    assert json_round_trip(sig, kwargs) == kwargs
