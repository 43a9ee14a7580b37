"""Cold start of a Lambda handler in this fresh process (run by ``python -m bench``).

    python -m bench.coldstart {ours,reference,floor} [OUT.json]

Imports nothing before the clock starts but :mod:`time`; then imports the
side's handler module, and invokes it once with an empty SQS batch (the cold
start: environment loaders, ``django.setup()``). Prints or writes JSON with
``import_s`` (the handler module alone), ``first_call_s`` and ``total_s``.

``floor`` is what any handler of this design needs before its first record,
without a task library: ``django.setup()`` of a project whose one app has one
results model (loading the database backend, as any model does), then pydantic
validating one message body (both packages validate messages with pydantic).
Run it with the same venv as a side.
"""

import time

STARTED = time.perf_counter()

import importlib  # noqa: E402
import sys  # noqa: E402

HANDLERS = {
    "ours": "lambda_tasks_handler",
    "reference": "lambda_tasks.handler",
    "floor": "bench.coldstart",
}
SETTINGS = {
    "ours": "bench.projects.ours.settings",
    "reference": "bench.projects.reference.settings",
    "floor": "bench.projects.floor.settings",
}


def handler(event: dict[str, list[object]], context: object) -> dict[str, list[object]]:
    """The floor's "handler": Django set up, one message body validated with pydantic."""
    import django
    import pydantic

    django.setup()

    class Message(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid", strict=True)
        task_name: str
        kwargs: dict[str, object]
        n_retries: int = 0

    Message.model_validate_json('{"task_name": "app.tasks.noop", "kwargs": {}, "n_retries": 0}')
    return {"batchItemFailures": []}


class LambdaContext:
    """A stand-in for the Lambda context object (15-minute function timeout)."""

    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self._deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in HANDLERS or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    side = argv[0]
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS[side])
    module = importlib.import_module(HANDLERS[side])
    imported = time.perf_counter()
    response = module.handler({"Records": []}, LambdaContext())
    done = time.perf_counter()
    if response != {"batchItemFailures": []}:
        print(f"unexpected response to an empty batch: {response!r}", file=sys.stderr)
        return 1
    import json

    text = json.dumps(
        {
            "side": side,
            "import_s": imported - STARTED,
            "first_call_s": done - imported,
            "total_s": done - STARTED,
            "modules": len(sys.modules),
            "boto3_imported": "boto3" in sys.modules,
        }
    )
    if len(argv) > 1:
        with open(argv[1], "w") as out:
            out.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
