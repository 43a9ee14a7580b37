"""Arbitrary SQS events for the handler, and what it must do with them (SPEC §6, §8).

Shared by ``tests/handler/test_fuzz.py`` (a few hundred events on every run)
and ``bench/fuzz_handler.py`` (ten thousand or more).

The events are shaped like SQS batches (a ``Records`` list) but anything goes
inside: records that are not objects, missing or odd ``messageId`` values,
bodies that are not strings, not JSON, not our message shape, naming
functions that are not tasks (``os.system``, a plain function of an installed
app's ``tasks`` module, a class...), kwargs of every type, malformed
invocation id attributes, FIFO markers. :func:`check` runs the handler on one
event and compares it with an independent prediction.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE, record_id

#: Registered tasks that are quick and need no service (no singleton, no sleep).
SAFE_TASKS = {
    "tests.testapp.tasks.add": {"a": "int", "b": "int?"},
    "tests.testapp.tasks.noop": {},
    "tests.testapp.tasks.always_flaky": {"name": "str?"},
    "tests.testapp.tasks.create_group_then_fail": {"name": "str"},
    "tests.testapp.tasks.returns_unjsonable": {},
    "tests.testapp.tasks.logs": {"text": "str"},
}
#: Names that must never run: not tasks, or outside the installed apps.
EVIL_NAMES = [
    "os.system",
    "builtins.eval",
    "subprocess.run",
    "shutil.rmtree",
    "this.s",
    "antigravity.fly",
    "tests.testapp.tasks.not_a_task",
    "tests.testapp.tasks.Flaky",
    "tests.testapp.tasks.Group",
    "tests.testapp.tasks.os.system",
    "tests.testapp.tasks.time.sleep",
    "tests.testapp.tasks.add.func",
    "tests.testapp.tasks.add.__call__",
    "tests.testapp.tasks",
    "tests.testapp.tasks.",
    "tests.testapp.tasks.add ",
    "lambda_tasks_django.registry.resolve",
    "lambda_tasks_django.tasks.cleanup_task_records.func",
    "tests.testapp.tasks.__builtins__",
    "django.core.management.call_command",
]
#: Modules that importing a task name must never load (they have import side effects).
FORBIDDEN_MODULES = ("this", "antigravity")

MAX_RECORDS = 10

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _kwarg(kind: str) -> st.SearchStrategy[Any]:
    if kind.startswith("int"):
        return st.integers(min_value=-(10**6), max_value=10**6)
    return st.text(max_size=20)


@st.composite
def task_kwargs(draw: st.DrawFn, task_name: str) -> dict[str, Any]:
    """Kwargs that fit the task's signature most of the time, and anything otherwise."""
    shape = SAFE_TASKS.get(task_name)
    if shape is None or draw(st.integers(0, 4)) == 0:
        return draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    kwargs = {
        name: draw(_kwarg(kind))
        for name, kind in shape.items()
        if not kind.endswith("?") or draw(st.booleans())
    }
    if draw(st.integers(0, 5)) == 0:  # a wrong type, strictness must catch it
        kwargs[draw(st.sampled_from([*shape, "extra"]))] = draw(json_values)
    return kwargs


def _percent(draw: st.DrawFn) -> int:
    return draw(st.integers(0, 99))


@st.composite
def task_names(draw: st.DrawFn) -> str:
    roll = _percent(draw)
    if roll < 60:
        return draw(st.sampled_from(sorted(SAFE_TASKS)))
    if roll < 85:
        return draw(st.sampled_from(EVIL_NAMES))
    return draw(st.text(max_size=30))


@st.composite
def message_bodies(draw: st.DrawFn) -> Any:
    """A message body: our shape (often valid), other JSON, text, or not a string at all."""
    roll = _percent(draw)
    if roll < 70:
        task_name = draw(task_names())
        message: dict[str, Any] = {"task_name": task_name, "kwargs": draw(task_kwargs(task_name))}
        n_roll = _percent(draw)
        if n_roll < 80:
            message["n_retries"] = draw(st.integers(min_value=0, max_value=3))
        elif n_roll < 90:
            message["n_retries"] = draw(json_scalars | st.integers(max_value=-1))
        if _percent(draw) < 10:
            del message[draw(st.sampled_from(sorted(message)))]
        if _percent(draw) < 5:
            message[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        return json.dumps(message)
    if roll < 85:
        return json.dumps(draw(json_values))
    if roll < 95:
        return draw(st.text(max_size=40))
    return draw(json_values)  # not a string (None, a number, a list...)


@st.composite
def invocation_attributes(draw: st.DrawFn) -> Any:
    roll = _percent(draw)
    if roll < 35:
        return None  # no attribute: the messageId is the invocation id
    if roll < 80:
        return "fresh"  # a valid attribute (a fresh UUID, filled in by `fresh_ids`)
    if roll < 90:
        return {"stringValue": draw(json_scalars), "dataType": "String"}
    if roll < 95:
        return {"stringValue": draw(st.text(min_size=90, max_size=120)), "dataType": "String"}
    return draw(json_values)


@st.composite
def sqs_records(draw: st.DrawFn, fifo: bool) -> Any:
    """One record: mostly SQS-shaped, sometimes not an object at all."""
    if _percent(draw) < 3:
        return draw(json_values)
    made: dict[str, Any] = {}
    roll = _percent(draw)
    if roll < 90:
        made["messageId"] = "fresh"  # made unique by `fresh_ids`
    elif roll < 93:
        made["messageId"] = ""
    elif roll < 97:
        made["messageId"] = draw(json_values)
    # else: no messageId at all
    if _percent(draw) < 97:
        made["body"] = draw(message_bodies())
    attribute = draw(invocation_attributes())
    roll = _percent(draw)
    if roll < 3:
        made["messageAttributes"] = draw(json_values)
    elif roll < 6:
        made["messageAttributes"] = None
    elif roll < 8:
        pass  # no messageAttributes key
    elif attribute is not None:
        made["messageAttributes"] = {INVOCATION_ID_ATTRIBUTE: attribute}
    else:
        made["messageAttributes"] = {}
    roll = _percent(draw)
    if roll < 95:
        made["attributes"] = (
            {"ApproximateReceiveCount": "1", "MessageGroupId": "g", "SequenceNumber": "1"}
            if fifo
            else {"ApproximateReceiveCount": "1"}
        )
    elif roll < 98:
        made["attributes"] = draw(json_values)
    roll = _percent(draw)
    queue = "arn:aws:sqs:us-east-1:123456789012:q" + (".fifo" if fifo else "")
    if roll < 95:
        made["eventSourceARN"] = queue
    elif roll < 98:
        made["eventSourceARN"] = draw(json_scalars)
    made["eventSource"] = "aws:sqs"
    return made


@st.composite
def sqs_events(draw: st.DrawFn) -> dict[str, Any]:
    """An event with a ``Records`` list of up to 10 records; one in five from a FIFO queue."""
    fifo = _percent(draw) < 20
    return {"Records": draw(st.lists(sqs_records(fifo), max_size=MAX_RECORDS))}


def fresh_ids(event: dict[str, Any]) -> dict[str, Any]:
    """Give every ``"fresh"`` messageId and invocation id a new UUID.

    Hypothesis replays and shrinks values; fresh ids keep one example's
    records from being redeliveries of another's.
    """
    for made in event["Records"]:
        if not isinstance(made, dict):
            continue
        if made.get("messageId") == "fresh":
            made["messageId"] = str(uuid.uuid4())
        attributes = made.get("messageAttributes")
        if isinstance(attributes, dict) and attributes.get(INVOCATION_ID_ATTRIBUTE) == "fresh":
            attributes[INVOCATION_ID_ATTRIBUTE] = {
                "stringValue": str(uuid.uuid4()),
                "dataType": "String",
            }
    return event


# ---------------------------------------------------------------------- the oracle


@dataclass
class Prediction:
    """Which records must run and which must be reported, worked out without the handler.

    ``either`` holds the records whose fate depends on more than the event:
    redeliveries of an attempt that already has a record (a retried attempt's
    redelivery is reported until its retry starts) and kwargs with a NUL
    character (PostgreSQL cannot store it, so the record fails before running
    there, and runs on SQLite).
    """

    runs: dict[str, tuple[str, int]] = field(default_factory=dict)  # messageId -> record key
    reported: list[str] = field(default_factory=list)
    either: set[str] = field(default_factory=set)


def _valid_kwargs(task_name: str, kwargs: Any) -> bool:
    shape = SAFE_TASKS[task_name]
    if not isinstance(kwargs, dict):
        return False
    required = {name for name, kind in shape.items() if not kind.endswith("?")}
    if not required <= kwargs.keys() or not kwargs.keys() <= shape.keys():
        return False
    for name, value in kwargs.items():
        if shape[name].startswith("int"):
            if type(value) is not int:
                return False
        elif not isinstance(value, str):
            return False
    return True


def _runnable(made: Any) -> tuple[str, int] | None:
    """(invocation id, n_retries) when a record must run, else None."""
    body = made.get("body")
    if not isinstance(body, str):
        return None
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or not message.keys() <= {"task_name", "kwargs", "n_retries"}:
        return None
    task_name = message.get("task_name")
    n_retries = message.get("n_retries", 0)
    if task_name not in SAFE_TASKS or type(n_retries) is not int or n_retries < 0:
        return None
    if not _valid_kwargs(task_name, message.get("kwargs", {})):
        return None
    attributes = made.get("messageAttributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        return None
    if INVOCATION_ID_ATTRIBUTE in attributes:
        attribute = attributes[INVOCATION_ID_ATTRIBUTE]
        value = attribute.get("stringValue") if isinstance(attribute, dict) else None
    else:
        value = made["messageId"]
    if not isinstance(value, str) or not 0 < len(value) <= 100 or not value.isprintable():
        return None
    if n_retries > 32_767:  # more than TaskRecord.n_retries can hold
        return None
    return value, n_retries


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def predict(event: dict[str, Any], recorded: Callable[[tuple[str, int]], bool]) -> Prediction:
    """What the handler must do with ``event``; ``recorded(key)``: that attempt has a record."""
    records = event["Records"]
    fifo = any(
        isinstance(r, dict)
        and (
            (isinstance(r.get("eventSourceARN"), str) and r["eventSourceARN"].endswith(".fifo"))
            or (isinstance(r.get("attributes"), dict) and "MessageGroupId" in r["attributes"])
        )
        for r in records
    )
    prediction = Prediction()
    stopped = False  # FIFO: everything from here on is reported
    uncertain = False  # FIFO: everything from here on depends on an `either` record
    for made in records:
        message_id = made.get("messageId") if isinstance(made, dict) else None
        if not isinstance(message_id, str) or not message_id:
            stopped = stopped or fifo
            continue
        key = None if stopped else _runnable(made)
        if uncertain and not stopped:
            prediction.either.add(message_id)
        elif key is None:
            if message_id not in prediction.reported:
                prediction.reported.append(message_id)
            stopped = stopped or fifo
        elif key in prediction.runs.values() or recorded(key) or _has_nul(json.loads(made["body"])):
            prediction.either.add(message_id)
            uncertain = fifo
        else:
            prediction.runs[message_id] = key
    return prediction


# ---------------------------------------------------------------------- running one event


@dataclass
class Tally:
    """Figures of a fuzz run."""

    events: int = 0
    records: int = 0
    ran: int = 0
    reported: int = 0
    handler_exceptions: int = 0
    unintended_executions: int = 0
    wrong_responses: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(problem)


class LambdaContext:
    """A context with all the time Lambda gives."""

    function_name = "lambda-tasks-fuzz"
    memory_limit_in_mb = "512"
    aws_request_id = "fuzz"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@contextmanager
def watch_forbidden_calls() -> Iterator[list[str]]:
    """Record calls of ``os.system`` and of the installed app's non-task function."""
    from tests.testapp import tasks as testapp

    calls: list[str] = []
    real_system = os.system

    def fake_system(command: Any) -> int:
        calls.append(f"os.system({command!r})")
        return 0

    os.system = fake_system
    before = len(testapp.NOT_A_TASK_CALLS)
    try:
        yield calls
    finally:
        os.system = real_system
        calls.extend(f"not_a_task{kw!r}" for kw in testapp.NOT_A_TASK_CALLS[before:])


def check(event: dict[str, Any], tally: Tally) -> None:
    """Run the handler on one event; count every departure from the prediction."""
    from lambda_tasks_django.models import TaskRecord
    from lambda_tasks_handler import handler

    event = fresh_ids(event)
    prediction = predict(event, lambda key: TaskRecord.objects.filter(pk=record_id(*key)).exists())
    batch_ids = {
        r["messageId"]
        for r in event["Records"]
        if isinstance(r, dict) and isinstance(r.get("messageId"), str)
    }
    tally.events += 1
    tally.records += len(event["Records"])
    before = TaskRecord.objects.count()
    with watch_forbidden_calls() as forbidden:
        try:
            response = handler(event, LambdaContext())
        except Exception as exc:
            tally.handler_exceptions += 1
            tally.note(f"handler raised {type(exc).__name__}: {exc} for {event!r}")
            return
    created = TaskRecord.objects.count() - before
    ran = {
        message_id
        for message_id, (invocation_id, n) in prediction.runs.items()
        if TaskRecord.objects.filter(pk=record_id(invocation_id, n)).exists()
    }
    loaded = [name for name in FORBIDDEN_MODULES if name in sys.modules]
    if forbidden or loaded or created > len(prediction.runs) + len(prediction.either):
        tally.unintended_executions += 1
        tally.note(f"unintended: {forbidden} {loaded} {created} records for {event!r}")
    reported = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
    tally.ran += len(ran)
    tally.reported += len(reported)
    if (
        [r for r in reported if r not in prediction.either] != prediction.reported
        or not set(reported) <= batch_ids
        or len(set(reported)) != len(reported)
        or ran != set(prediction.runs)
    ):
        tally.wrong_responses += 1
        tally.note(
            f"reported {reported}, expected {prediction.reported}; ran {sorted(ran)}, "
            f"expected {sorted(prediction.runs)} for {event!r}"
        )
