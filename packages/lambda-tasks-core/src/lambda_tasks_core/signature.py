"""Task signatures: decoration-time checks and strict kwargs validation (SPEC §2, §3)."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Mapping
from typing import Any

import typing_extensions
from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter, with_config

from lambda_tasks_core.exceptions import TaskDefinitionError

__all__ = ["TaskSignature"]

_STRICT = ConfigDict(strict=True, extra="forbid")


class TaskSignature:
    """The keyword-only, annotated parameters of a task function.

    Validation is strict both ways: at enqueue, Python values must already have
    the annotated types (``"1"`` is not an ``int``, nor is ``True``); at execution
    the JSON kwargs are validated in pydantic's JSON mode, where an ISO string is
    the JSON form of a ``datetime``.
    """

    __slots__ = ("_adapter", "parameters", "task_name")

    def __init__(self, func: Callable[..., Any], task_name: str) -> None:
        self.task_name = task_name
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as exc:
            raise TaskDefinitionError(
                f"task {task_name}: cannot resolve the parameter annotations ({exc})"
            ) from exc
        fields: dict[str, Any] = {}
        self.parameters: tuple[str, ...] = ()
        for param in inspect.signature(func).parameters.values():
            where = f"task {task_name}: parameter {param.name!r}"
            if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                raise TaskDefinitionError(
                    f"{where} must be keyword-only: put a bare '*' before it "
                    "(tasks are called with keyword arguments only; *args and **kwargs "
                    "are not allowed)"
                )
            if param.name.startswith("_"):
                raise TaskDefinitionError(
                    f"{where} must not start with '_': those names are reserved for "
                    "per-call overrides such as _delay"
                )
            if param.name not in hints:
                raise TaskDefinitionError(f"{where} needs a type annotation")
            hint = hints[param.name]
            fields[param.name] = (
                hint
                if param.default is inspect.Parameter.empty
                else typing_extensions.NotRequired[hint]
            )
        self.parameters = tuple(fields)
        shape = with_config(_STRICT)(typing_extensions.TypedDict(f"{task_name}.kwargs", fields))  # type: ignore[operator]
        try:
            self._adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(shape)
        except PydanticSchemaGenerationError as exc:
            raise TaskDefinitionError(
                f"task {task_name}: a parameter type cannot be sent as JSON "
                f"({str(exc).splitlines()[0]}); "
                "use JSON types, datetime, UUID, Decimal, enums or pydantic models"
            ) from exc

    def validate_python(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Check call-time kwargs strictly; raises ``pydantic.ValidationError``."""
        # strict=True at call time, not only in the config: a config's strictness
        # stops at nested pydantic models, which have their own (usually lax) one.
        return self._adapter.validate_python(dict(kwargs), strict=True)

    def to_json_compatible(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate call-time kwargs and return their JSON form (for the wire message)."""
        validated = self.validate_python(kwargs)
        dumped: dict[str, Any] = self._adapter.dump_python(validated, mode="json")
        return dumped

    def validate_json(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Rebuild Python values from kwargs decoded out of a message (strict JSON mode)."""
        return self._adapter.validate_json(json.dumps(kwargs), strict=True)
