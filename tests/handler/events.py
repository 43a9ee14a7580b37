"""Lambda SQS events for the tests, built from the canonical events in ``events/``.

``events/sqs_standard.json`` and ``events/sqs_fifo.json`` are the shapes AWS
documents for an SQS event source mapping; the builders below copy a record
of them and change only what a test is about.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from lambda_tasks_core import INVOCATION_ID_ATTRIBUTE

EVENTS = Path(__file__).parent / "events"

Record = dict[str, Any]
Event = dict[str, Any]


def canonical(name: str) -> Event:
    """A canonical event (``"sqs_standard"`` or ``"sqs_fifo"``), freshly loaded."""
    loaded: Event = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


_STANDARD = canonical("sqs_standard")["Records"][1]  # the one without message attributes
_FIFO = canonical("sqs_fifo")["Records"][0]


def body(task_name: str, n_retries: int = 0, /, **kwargs: Any) -> str:
    """A message body in the wire format of SPEC §3."""
    return json.dumps({"task_name": task_name, "kwargs": kwargs, "n_retries": n_retries})


def task_body(task: str, n_retries: int = 0, /, **kwargs: Any) -> str:
    """The body for a task of tests/testapp/tasks.py, by its short name."""
    return body(f"tests.testapp.tasks.{task}", n_retries, **kwargs)


def record(
    message_body: Any,
    *,
    message_id: str | None = None,
    invocation_id: str | None = None,
    fifo: bool = False,
) -> Record:
    """One SQS record; ``invocation_id`` sets the ``lambda_tasks_invocation_id`` attribute."""
    made: Record = copy.deepcopy(_FIFO if fifo else _STANDARD)
    made["messageId"] = message_id or str(uuid.uuid4())
    made["body"] = message_body
    if invocation_id is not None:
        made["messageAttributes"] = {
            INVOCATION_ID_ATTRIBUTE: {
                "stringValue": invocation_id,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        }
    return made


def event(*records: Record) -> Event:
    return {"Records": list(records)}


def failed_ids(response: Any) -> list[str]:
    """The messageIds of a partial batch response, in order."""
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
