"""Which names a message may run (SPEC §8).

Names come from the registry that each app's ``tasks`` module fills when
Django starts. A name not yet registered may trigger an import only when it
lies inside an installed app's package; nothing else is ever imported or called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from django.apps import apps

from lambda_tasks_core import UnknownTaskError

if TYPE_CHECKING:
    from lambda_tasks_django.execution import Runnable

__all__ = ["find", "register", "registered", "resolve"]

_tasks: dict[str, Runnable] = {}


def register(task: Runnable) -> None:
    """Add a decorated task under its dotted name."""
    _tasks[task.name] = task


def find(task_name: str) -> Runnable | None:
    """The task registered under ``task_name``, or None (nothing is imported)."""
    return _tasks.get(task_name)


def registered() -> dict[str, Runnable]:
    """A copy of the registry: dotted name → task."""
    return dict(_tasks)


def resolve(task_name: str) -> Runnable:
    """The task named ``task_name``; ``UnknownTaskError`` for anything else."""
    task = _tasks.get(task_name)
    if task is not None:
        return task
    module_name = _module_inside_installed_app(task_name)
    if module_name is not None:
        try:
            importlib.import_module(module_name)
        except Exception as exc:
            raise UnknownTaskError(
                f"{task_name!r} is not a registered task (importing {module_name} failed: "
                f"{type(exc).__name__}: {exc})"
            ) from exc
        task = _tasks.get(task_name)
        if task is not None:
            return task
    raise UnknownTaskError(
        f"{task_name!r} is not a registered task: only functions decorated with "
        "@lambda_task in an installed app can run"
    )


def _module_inside_installed_app(task_name: str) -> str | None:
    """The module part of ``task_name`` when it lies inside an installed app's package."""
    module_name, _, attribute = task_name.rpartition(".")
    if (
        not module_name
        or not attribute
        or not all(part.isidentifier() for part in task_name.split("."))
    ):
        return None
    for config in apps.get_app_configs():
        if module_name == config.name or module_name.startswith(config.name + "."):
            return module_name
    return None
